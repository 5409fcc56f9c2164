# Stand-ins for the NixOS options that nixosModules.host and .guest set, declared with the types
# NixOS gives them (nixos/lib/systemd-unit-options.nix, users-groups.nix, firewall.nix, caddy,
# unbound, fileSystems), so that tests/integration/nix.sh can evaluate the modules with nixpkgs'
# real lib.evalModules without a nixpkgs checkout: the modules' own options, types, defaults,
# merges and assertions are the real thing; only the options they write into are declared here.
# A full NixOS evaluation is the flake's `checks` (nix flake check).
{ lib }:
let
  inherit (lib) mkOption types;
  opt = type: default: mkOption { inherit type default; };
  names = opt (types.listOf types.str) [ ];
  # nixos/lib/systemd-unit-options.nix: unitOption (lists add up, anything else must agree)
  unitOption = types.oneOf [
    types.bool
    types.int
    types.str
    types.path
    (types.listOf (
      types.oneOf [
        types.str
        types.int
        types.path
      ]
    ))
  ];
  unit = {
    options = {
      enable = opt types.bool true;
      overrideStrategy = opt (types.enum [
        "asDropinIfExists"
        "asDropin"
      ]) "asDropinIfExists";
      description = opt types.str "";
      wantedBy = names;
      requiredBy = names;
      wants = names;
      requires = names;
      after = names;
      before = names;
      unitConfig = opt (types.attrsOf unitOption) { };
      restartTriggers = opt (types.listOf types.unspecified) [ ];
    };
  };
  service = {
    imports = [ unit ];
    options = {
      path = opt (types.listOf (types.either types.package types.str)) [ ];
      environment = opt (types.attrsOf (
        types.nullOr (
          types.oneOf [
            types.str
            types.path
            types.package
          ]
        )
      )) { };
      serviceConfig = opt (types.attrsOf unitOption) { };
      script = opt types.lines "";
      restartIfChanged = opt types.bool true;
    };
  };
  timer = {
    imports = [ unit ];
    options.timerConfig = opt (types.attrsOf unitOption) { };
  };
  socket = {
    imports = [ unit ];
    options = {
      listenStreams = opt (types.listOf types.str) [ ];
      socketConfig = opt (types.attrsOf unitOption) { };
    };
  };
  ports = opt (types.listOf types.port) [ ];
  ranges = opt (types.listOf (types.attrsOf types.port)) [ ];
  firewallRules = {
    allowedTCPPorts = ports;
    allowedUDPPorts = ports;
    allowedTCPPortRanges = ranges;
    allowedUDPPortRanges = ranges;
  };
  drv = name: {
    type = "derivation";
    inherit name;
    outPath = "${builtins.storeDir}/00000000000000000000000000000000-${name}";
  };
in
{
  inherit drv;

  module = {
    options = {
      assertions = opt (types.listOf types.unspecified) [ ];
      warnings = opt (types.listOf types.str) [ ];
      environment.systemPackages = opt (types.listOf types.package) [ ];
      environment.etc = opt (types.attrsOf (
        types.submodule {
          options.text = opt (types.nullOr types.lines) null;
        }
      )) { };
      systemd.package = opt types.package (drv "systemd");
      systemd.packages = opt (types.listOf types.package) [ ];
      systemd.services = opt (types.attrsOf (types.submodule service)) { };
      systemd.targets = opt (types.attrsOf (types.submodule unit)) { };
      systemd.timers = opt (types.attrsOf (types.submodule timer)) { };
      systemd.sockets = opt (types.attrsOf (types.submodule socket)) { };
      users.users = opt (types.attrsOf (
        types.submodule {
          options = {
            isSystemUser = opt types.bool false;
            group = opt types.str "";
            description = opt types.str "";
          };
        }
      )) { };
      users.groups = opt (types.attrsOf (types.submodule { })) { };
      services.caddy = {
        enable = opt types.bool false;
        virtualHosts = opt (types.attrsOf (
          types.submodule {
            options.extraConfig = opt types.lines "";
          }
        )) { };
      };
      services.unbound = {
        enable = opt types.bool false;
        resolveLocalQueries = opt types.bool true;
        settings = opt (types.submodule {
          freeformType = types.attrsOf types.anything;
          options.server = opt (types.submodule {
            freeformType = types.attrsOf types.anything;
            options.interface = opt (types.listOf types.str) [
              "127.0.0.1"
              "::1"
            ];
            options.access-control = opt (types.listOf types.str) [
              "127.0.0.0/8 allow"
              "::1/128 allow"
            ];
          }) { };
        }) { };
      };
      networking = {
        enableIPv6 = opt types.bool true;
        useDHCP = opt types.bool true;
        resolvconf.enable = opt types.bool true;
        resolvconf.package = opt types.package (drv "openresolv");
        nftables.enable = opt types.bool false;
        nftables.flushRuleset = opt types.bool true;
        firewall = firewallRules // {
          enable = opt types.bool true;
          interfaces = opt (types.attrsOf (types.submodule { options = firewallRules; })) { };
        };
      };
      boot.kernelModules = opt (types.listOf types.str) [ ];
      boot.kernelParams = opt (types.listOf types.str) [ ];
      boot.initrd.availableKernelModules = opt (types.listOf types.str) [ ];
      fileSystems = opt (types.attrsOf (
        types.submodule {
          options = {
            device = opt types.str "";
            fsType = opt types.str "auto";
            options = opt (types.listOf types.str) [ "defaults" ];
          };
        }
      )) { };
      system.build = opt (types.lazyAttrsOf types.unspecified) { };
      system.boot.loader.kernelFile = opt types.str "bzImage";
      system.boot.loader.initrdFile = opt types.str "initrd";
    };
    # what a NixOS system's build outputs look like to the guest module
    config.system.build = {
      kernel = drv "linux";
      initialRamdisk = drv "initrd";
      toplevel = drv "nixos-system-guest";
    };
  };

  # the packages the modules name, as stand-in derivations (nothing is built or read)
  pkgs = {
    ocvm = drv "ocvm";
    ocvm-guest = drv "ocvm-guest";
    qemu_kvm = drv "qemu";
    curl = drv "curl";
    iproute2 = drv "iproute2";
    gawk = drv "gawk";
    gnugrep = drv "gnugrep";
    coreutils = drv "coreutils";
  };
}
