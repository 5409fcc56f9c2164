# nixosModules.host and .guest through nixpkgs' lib.evalModules (tests/integration/nix.sh, when a
# nixpkgs lib is at hand): the NixOS options they write into are the stand-ins of
# ./nixos-stubs.nix; everything of the modules' own is real. Returns plain data (JSON) for the
# test to check: the rendered /etc/ocvm/*.json, the units, the assertions that fail.
{
  lib,
  dir,
  user,
}:
let
  stubs = import ./nixos-stubs.nix { inherit lib; };
  vms = import ./vms.nix { inherit dir user; };
  asOptions = vm: removeAttrs vm [ "name" ];

  eval =
    modules:
    lib.evalModules {
      modules = [
        stubs.module
        { _module.args.pkgs = stubs.pkgs; }
      ] ++ modules;
    };
  failed = config: map (a: a.message) (lib.filter (a: !a.assertion) config.assertions);

  # a test guest: a plain gateway unit the user wrote, one secret
  guestModule = {
    imports = [ ../modules/guest.nix ];
    services.ocvm-guest.enable = true;
    services.ocvm-guest.secrets.files = [ "telegram" ];
    systemd.services.openclaw-gateway = {
      wantedBy = [ "multi-user.target" ];
      serviceConfig.ExecStart = "/run/current-system/sw/bin/openclaw gateway run";
    };
  };
  guest = eval [ guestModule ];

  hostWith =
    vmsConfig: modules:
    eval (
      [
        ../modules/host.nix
        {
          services.ocvm.enable = true;
          services.ocvm.vms = vmsConfig;
        }
      ]
      ++ modules
    );
  # examples/nixos/configuration.nix itself, its guest the test guest, and this machine's files
  # (stand-ins) for the kernel, the initrd and the secret
  host =
    hostWith
      {
        full = asOptions vms.full;
        unsafe = asOptions vms.unsafe;
      }
      [
        ../../examples/nixos/configuration.nix
        { _module.args.ocvmGuest = guest; }
        {
          services.ocvm.vms.openclaw = {
            boot.kernel = "${dir}/vmlinuz";
            boot.initrd = "${dir}/initrd.img";
            machine.user = user;
            secrets.files.telegram = lib.mkForce "${dir}/telegram-token";
          };
        }
      ];
  # the kernel, initrd, cmdline and health path come from the guest when not given
  hostGuestDefaults = hostWith {
    openclaw = {
      inherit guest;
      machine.user = user;
      secrets.files.telegram = "${dir}/telegram-token";
    };
  } [ ];

  # A unit as text, the way NixOS writes one (enough of it for systemd-analyze verify)
  value = v: if builtins.isBool v then (if v then "yes" else "no") else toString v;
  lines = attrs: lib.concatStrings (lib.mapAttrsToList (k: v: lib.concatMapStrings (x: "${k}=${value x}\n") (lib.toList v)) attrs);
  unitText =
    u: serviceConfig:
    "[Unit]\n"
    + lines (
      lib.filterAttrs (_: v: v != [ ] && v != "") {
        Description = u.description;
        After = lib.concatStringsSep " " u.after;
        Before = lib.concatStringsSep " " u.before;
        Wants = lib.concatStringsSep " " u.wants;
      }
      // u.unitConfig
    )
    + "\n[Service]\n"
    + lines serviceConfig;

  hc = host.config;
  gc = guest.config;
  svc = hc.systemd.services;
  gsvc = gc.systemd.services;
in
{
  guest = {
    failedAssertions = failed gc;
    warnings = gc.warnings;
    kernelModules = gc.boot.kernelModules;
    relay = {
      inherit (gsvc.ocvm-guest-relay) wantedBy before after;
      serviceConfig = gsvc.ocvm-guest-relay.serviceConfig;
      text = unitText gsvc.ocvm-guest-relay gsvc.ocvm-guest-relay.serviceConfig;
    };
    gateway = {
      inherit (gsvc.openclaw-gateway) after wants environment;
      serviceConfig = gsvc.openclaw-gateway.serviceConfig;
      unitConfig = gsvc.openclaw-gateway.unitConfig;
    };
    ready = {
      inherit (gsvc.ocvm-gateway-ready) wantedBy before after script;
      serviceConfig = gsvc.ocvm-gateway-ready.serviceConfig;
    };
    network = {
      inherit (gsvc.ocvm-guest-network) script;
    };
    secretsMount = gc.fileSystems."/run/shares/ocvm-secrets";
    boot = gc.system.build.ocvm;
    # the gateway's port opened in the firewall, three ways: each must fail an assertion
    openPort = failed (eval [
      guestModule
      { networking.firewall.allowedTCPPorts = [ 18789 ]; }
    ]).config;
    openRange = failed (eval [
      guestModule
      {
        networking.firewall.allowedTCPPortRanges = [
          {
            from = 18000;
            to = 19000;
          }
        ];
      }
    ]).config;
    openInterface = failed (eval [
      guestModule
      { networking.firewall.interfaces.eth0.allowedTCPPorts = [ 18789 ]; }
    ]).config;
  };

  host = {
    failedAssertions = failed hc;
    warnings = hc.warnings;
    etc = lib.mapAttrs (_: f: f.text) hc.environment.etc;
    packages = map (p: p.name) hc.systemd.packages;
    users = {
      ocvm = {
        inherit (hc.users.users.ocvm) isSystemUser group;
      };
      groups = lib.attrNames hc.users.groups;
    };
    target = {
      inherit (hc.systemd.targets.ocvm-vms) wantedBy wants;
    };
    instances = lib.mapAttrs (_: s: {
      inherit (s) overrideStrategy wantedBy restartIfChanged;
      path = map (p: p.name or p) s.path;
      inherit (s) serviceConfig;
      dropin = lines s.serviceConfig;
    }) (lib.filterAttrs (n: _: lib.hasPrefix "ocvm@" n) svc);
    timers = lib.mapAttrs (_: t: { inherit (t) overrideStrategy wantedBy; }) hc.systemd.timers;
    sockets = lib.mapAttrs (_: t: { inherit (t) overrideStrategy wantedBy listenStreams; }) hc.systemd.sockets;
    caddy = {
      inherit (hc.services.caddy) enable;
      virtualHosts = lib.mapAttrs (_: v: v.extraConfig) hc.services.caddy.virtualHosts;
    };
    unbound = {
      inherit (hc.services.unbound) enable;
      server = hc.services.unbound.settings.server;
    };
    firewallInterfaces = hc.networking.firewall.interfaces;
    guestDefaults = {
      inherit (hostGuestDefaults.config.services.ocvm.vms.openclaw.boot) kernel initrd cmdline;
      inherit (hostGuestDefaults.config.services.ocvm.vms.openclaw.gateway) health_path;
      failedAssertions = failed hostGuestDefaults.config;
    };
    # a guest that expects a secret the host does not give, and a different gateway port
    guestMismatch = failed (hostWith {
      openclaw = {
        guest = eval [
          guestModule
          {
            services.ocvm-guest.gateway.port = 18800;
            services.ocvm-guest.secrets.files = [ "missing" ];
          }
        ];
        machine.user = user;
      };
    } [ ]).config;
    # a secret in the store is refused (by the option's type: the evaluation throws)
    storeSecret =
      (builtins.tryEval (
        builtins.deepSeq (hostWith {
          bad = {
            boot.kernel = "${dir}/vmlinuz";
            secrets.files.x = "${builtins.storeDir}/00000000000000000000000000000000-token";
          };
        } [ ]).config.environment.etc."ocvm/bad.json".text true
      )).success;
  };
}
