# nixosModules.host: ocvm VMs on a NixOS host.
#
#   services.ocvm.enable = true;
#   services.ocvm.vms.openclaw = { guest = <a nixosSystem with nixosModules.guest>; ... };
#
# Each VM's options mirror docs/config.md key for key (the JSON's snake_case names, so a line of
# the docs is a line here); `settings` is merged over them last, for a key this module does not
# know yet. They are rendered by ../lib/render-config.nix into /etc/ocvm/NAME.json, which the
# packaged template unit ocvm@.service reads (`ocvm up NAME`). Secrets are host paths: only the
# path enters the Nix store, never the file.
#
# The VMs are started the way microvm.nix starts its own: ocvm-vms.target (wanted by
# multi-user.target) wants ocvm@NAME.service; what one instance needs beyond the template is a
# drop-in (overrideStrategy = "asDropin"), never a unit of its own that would shadow the template.
{
  config,
  lib,
  pkgs,
  ...
}:
let
  inherit (lib)
    mkOption
    mkEnableOption
    mkIf
    mkMerge
    mkDefault
    types
    literalExpression
    ;
  cfg = config.services.ocvm;
  renderConfig = import ../lib/render-config.nix;
  enabledVMs = lib.filterAttrs (_: vm: vm.enable) cfg.vms;

  # A JSON value (what pkgs.formats.json's type is, without needing pkgs for it)
  jsonValue =
    let
      v =
        types.nullOr (
          types.oneOf [
            types.bool
            types.int
            types.float
            types.str
            (types.attrsOf v)
            (types.listOf v)
          ]
        )
        // {
          description = "JSON value";
        };
    in
    v;
  jsonObject = types.attrsOf jsonValue;

  absolutePath =
    types.addCheck types.str (s: builtins.substring 0 1 s == "/")
    // {
      description = "absolute path (a string)";
    };
  # A secret: a string naming a host file, so that a Nix path (which would be copied into the
  # world-readable store) is refused by the type already; render-config refuses a store path.
  secretFile =
    types.addCheck absolutePath (s: !(lib.hasPrefix "${builtins.storeDir}/" s) && !(builtins.hasContext s))
    // {
      description = "absolute path of a host file outside the Nix store (a string, not a Nix path)";
    };
  ipv4 = types.strMatching "[0-9]{1,3}(\\.[0-9]{1,3}){3}";
  ifname = types.strMatching "[^[:space:]/:]{1,15}";
  port = types.ints.between 1 65535;
  unsafe =
    what:
    mkOption {
      type = types.bool;
      default = false;
      description = "UNSAFE: waives ${what}. Weakens a safety rule (docs/policy.md); said on every start, in `ocvm status` and by `ocvm check`.";
    };

  egressRule = types.submodule {
    options = {
      host = mkOption {
        type = types.str;
        description = "Host name or IPv4 address the guest may reach.";
      };
      ports = mkOption {
        type = types.nonEmptyListOf port;
        description = "Its TCP/UDP ports.";
      };
    };
  };

  forward = types.submodule {
    options = {
      to = mkOption {
        type = types.enum [
          "guest"
          "host"
        ];
        description = "`guest`: a host listener into the guest; `host`: a guest listener out to the host.";
      };
      listen = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "For `to = \"guest\"`: the host endpoint (`tcp:HOST:PORT`, `unix:PATH`, `hybrid:PATH:PORT`), loopback only (OCVM-P002).";
      };
      connect = mkOption {
        type = types.nullOr types.str;
        default = null;
        description = "For `to = \"host\"`: the host endpoint the guest's connections go to.";
      };
      guest_port = mkOption {
        type = port;
        description = "The vsock port (and the guest's loopback port).";
      };
      unsafe_remote_listen = unsafe "OCVM-P002 (a forward listening beyond loopback)";
    };
  };

  share = types.submodule {
    options = {
      tag = mkOption {
        type = types.strMatching ".{1,36}";
        description = "The guest's mount tag (1-36 characters, unique).";
      };
      source = mkOption {
        type = absolutePath;
        description = "Host directory shared (a string: a Nix path would be copied into the store).";
      };
      proto = mkOption {
        type = types.enum [
          "virtiofs"
          "9p"
        ];
        default = "virtiofs";
        description = "virtiofs (ocvm runs one virtiofsd per share) or 9p.";
      };
      read_only = mkOption {
        type = types.bool;
        default = true;
        description = "Read-only for the guest. A writable share outside /run/ocvm and /var/lib/ocvm gets `ReadWritePaths=` in the instance's drop-in.";
      };
    };
  };

  vmModule =
    { name, config, ... }:
    let
      guestBuild = config.guest.config.system.build.ocvm or null;
    in
    {
      options = {
        enable = mkOption {
          type = types.bool;
          default = true;
          description = "Render /etc/ocvm/${name}.json and make ocvm@${name}.service.";
        };
        autostart = mkOption {
          type = types.bool;
          default = true;
          description = "Start the VM at boot (ocvm-vms.target wants ocvm@${name}.service).";
        };
        socketActivation = mkOption {
          type = types.bool;
          default = false;
          description = ''
            Listen on `gateway.host_listen` from boot with the packaged template
            ocvm-gateway@.socket (an instance drop-in wanted by sockets.target, its ListenStream=
            set to this VM's address): the port exists before the VM does, a client that
            connects first waits in the backlog and starts the VM (ocvm@${name}.service), and
            `ocvm up` takes the socket over (docs/systemd.md).
          '';
        };
        restartIfChanged = mkOption {
          type = types.bool;
          default = true;
          description = "Restart the VM on `nixos-rebuild switch` when its JSON config changed.";
        };
        guest = mkOption {
          type = types.nullOr types.raw;
          default = null;
          example = literalExpression "inputs.nixpkgs.lib.nixosSystem { modules = [ ocvm.nixosModules.guest ./guest.nix ]; }";
          description = ''
            A NixOS system built with ocvm's nixosModules.guest (a `nixosSystem` result). When
            set, `boot.kernel`, `boot.initrd` and `boot.cmdline` default to its
            `config.system.build.ocvm` outputs and `gateway.health_path` to its readiness path.
          '';
        };

        machine = {
          type = mkOption {
            type = types.enum [
              "microvm"
              "q35"
            ];
            default = "microvm";
            description = "microvm uses virtio-mmio devices, q35 PCI.";
          };
          accel = mkOption {
            type = types.enum [
              "auto"
              "kvm"
              "tcg"
            ];
            default = "auto";
            description = "auto: KVM only when the CPU shows vmx/svm and a probe guest really runs on /dev/kvm.";
          };
          vcpu = mkOption {
            type = types.ints.between 1 255;
            default = 2;
            description = "vCPUs; also the TAP queue count (at most 8).";
          };
          memory_mib = mkOption {
            type = types.ints.between 128 1048576;
            default = 2048;
            description = "Guest RAM in MiB.";
          };
          qemu = mkOption {
            type = types.str;
            default = "qemu-system-x86_64";
            description = "QEMU binary: a name looked up in the unit's PATH (which holds `services.ocvm.qemuPackage`) or a path.";
          };
          user = mkOption {
            type = types.nullOr types.str;
            default = "ocvm";
            description = "The user QEMU drops to (`-runas`); not root (OCVM-P007). This module declares the user `ocvm`.";
          };
          extra_args = mkOption {
            type = types.listOf types.str;
            default = [ ];
            description = "Appended to QEMU's argv; options that reach outside the VM are refused (OCVM-P006).";
          };
          unsafe_qemu_as_root = unsafe "OCVM-P007 (QEMU running as root)";
          unsafe_extra_args = unsafe "OCVM-P006 (extra QEMU arguments that reach outside the VM)";
        };

        boot = {
          kernel = mkOption {
            type = types.path;
            description = "Guest kernel (absolute). Defaults to the `guest`'s kernel when `guest` is set.";
          };
          initrd = mkOption {
            type = types.nullOr types.path;
            default = null;
            description = "Initramfs, or null.";
          };
          cmdline = mkOption {
            type = types.str;
            default = "console=ttyS0 panic=-1";
            description = "Kernel command line; ocvm appends `reboot=t` and its own `ocvm.*=` parameters, which are refused here (OCVM-P003).";
          };
          unsafe_cmdline = unsafe "OCVM-P003 (kernel command line parameters that are ocvm's to set)";
        };

        vsock = mkOption {
          type = types.nullOr (
            types.submodule {
              options = {
                backend = mkOption {
                  type = types.enum [
                    "auto"
                    "kernel"
                    "user"
                  ];
                  default = "auto";
                  description = "kernel: vhost-vsock; user: ocvm's vhost-user backend.";
                };
                guest_cid = mkOption {
                  type = types.ints.between 3 4294967294;
                  default = 3;
                  description = "The guest's vsock CID.";
                };
              };
            }
          );
          default = { };
          description = "The vsock device; null: none at all (then nothing reaches the gateway).";
        };

        network = mkOption {
          type = types.nullOr (
            types.submodule {
              options = {
                bridge = mkOption {
                  type = ifname;
                  default = "br-openclaw";
                  description = "Host bridge (made by ocvm if missing).";
                };
                bridge_address = mkOption {
                  type = types.strMatching "[0-9]{1,3}(\\.[0-9]{1,3}){3}/[0-9]{1,2}";
                  default = "192.168.83.1/24";
                  description = "Host side of the VM subnet, IPv4/prefix (1-30).";
                };
                tap = mkOption {
                  type = ifname;
                  default = "vm-openclaw";
                  description = "The VM's TAP.";
                };
                guest_address = mkOption {
                  type = ipv4;
                  default = "192.168.83.2";
                  description = "The guest's address, in that subnet.";
                };
                mac = mkOption {
                  type = types.strMatching "([0-9A-Fa-f]{2}:){5}[0-9A-Fa-f]{2}";
                  default = "02:00:00:00:00:01";
                  description = "The guest's MAC (unicast).";
                };
                uplink = mkOption {
                  type = ifname;
                  default = "auto";
                  description = "Interface the guest's traffic leaves by; auto: the default route's.";
                };
                dns = mkOption {
                  type = ipv4;
                  default = "192.168.83.1";
                  description = "The only resolver the guest may use (see `unbound.enable`).";
                };
                egress.allow = mkOption {
                  type = types.listOf egressRule;
                  default = [ ];
                  description = "Outbound allow-list; everything else is dropped and logged.";
                };
              };
            }
          );
          default = { };
          description = "The TAP network (outbound traffic only); null: none, the VM is reached over vsock alone.";
        };

        gateway = {
          guest_port = mkOption {
            type = port;
            default = 18789;
            description = "The gateway's port inside the guest.";
          };
          host_listen = mkOption {
            type = types.str;
            default = "127.0.0.1:18789";
            description = "Host relay listener, `HOST:PORT` or `[V6]:PORT`; loopback only (OCVM-P001).";
          };
          health_path = mkOption {
            type = types.strMatching "/.*";
            default = "/readyz";
            description = "Probed through the whole chain before the VM counts as ready (OpenClaw answers `/health` early and `/readyz` once it is really ready); the `guest`'s readiness path when `guest` is set.";
          };
          probe_interval_s = mkOption {
            type = types.ints.between 0 3600;
            default = 10;
            description = "After ready, the health path is probed through the chain this often; 0: never.";
          };
          probe_failures = mkOption {
            type = types.ints.between 1 1000;
            default = 3;
            description = "Failed probes in a row that mark the VM degraded (`ocvm status` says why; the watchdog is no longer fed).";
          };
          probe_restart_after = mkOption {
            type = types.ints.between 0 1000;
            default = 6;
            description = "Failed probes in a row that restart the VM (back-off and restart.max_restarts as for a crash); 0: never; else at least probe_failures.";
          };
          openclaw = mkOption {
            type = jsonObject;
            default = { };
            example = literalExpression ''{ agents.defaults.model.primary = "anthropic/claude-opus-4-6"; gateway.terminal = null; }'';
            description = "The gateway's own settings, merged over ocvm's secure defaults (RFC 7396: null deletes a key). See docs/config.md.";
          };
          unsafe_remote_gateway = unsafe "OCVM-P001 (the host relay listening beyond loopback)";
          unsafe_openclaw_bind = unsafe "OCVM-P008 (the gateway binding beyond the guest's loopback)";
          unsafe_openclaw_auth = unsafe "OCVM-P009 (weak or no gateway authentication)";
          unsafe_openclaw_tools = unsafe "OCVM-P010 (file tools outside the workspace, elevated tools)";
        };

        forwards = mkOption {
          type = types.listOf forward;
          default = [ ];
          description = "Extra vsock port forwards.";
        };

        shares = mkOption {
          type = types.listOf share;
          default = [ ];
          description = "Host directories shared into the guest.";
        };

        secrets = {
          files = mkOption {
            type = types.attrsOf secretFile;
            default = { };
            example = {
              telegram = "/run/secrets/telegram-bot-token";
            };
            description = ''
              Host files the guest needs that nobody else may see, by name (1-64 of
              `A-Z a-z 0-9 _ . -`). Paths only: the files stay where they are (owned by root,
              mode 0600: OCVM-P012) and ocvm stages them at each start into the guest's read-only
              share `ocvm-secrets`. Give strings, never Nix paths, which would copy the secret
              into the world-readable store.
            '';
          };
          gateway_token = mkOption {
            type = types.nullOr secretFile;
            default = null;
            description = "The gateway token's file; null: ocvm makes one and keeps it in /var/lib/ocvm/${name}/.";
          };
        };

        restart = {
          max_restarts = mkOption {
            type = types.ints.between 0 1000;
            default = 5;
            description = "Restarts of an unexpectedly dead QEMU before `up` gives up.";
          };
          backoff_initial_ms = mkOption {
            type = types.ints.between 1 3600000;
            default = 500;
            description = "First restart delay; it doubles up to backoff_max_ms.";
          };
          backoff_max_ms = mkOption {
            type = types.ints.between 1 3600000;
            default = 30000;
            description = "Longest restart delay.";
          };
        };

        timeouts = {
          ready_s = mkOption {
            type = types.ints.between 1 3600;
            default = 120;
            description = "A boot not ready by then is killed and restarted (`TimeoutStartSec=` follows it).";
          };
          shutdown_s = mkOption {
            type = types.ints.between 1 3600;
            default = 30;
            description = "How long `down` waits for the guest to power off (`TimeoutStopSec=` is this + 5 s).";
          };
        };

        settings = mkOption {
          type = jsonObject;
          default = { };
          description = "Free-form JSON merged over the rendered config last (objects key by key), for keys this module does not declare.";
        };

        caddy = {
          enable = mkEnableOption "a Caddy site (HTTPS, Caddy's internal CA) in front of the gateway, bound to 127.0.0.1";
          address = mkOption {
            type = types.str;
            default = "localhost:8443";
            description = "The site address; keep `gateway.openclaw.gateway.controlUi.allowedOrigins` in step (its default is https://localhost:8443).";
          };
        };

        unbound.enable = mkEnableOption ''
          an Unbound resolver for the guest on the bridge address that logs every lookup (what
          `ocvm dns-config ${name}` prints). Unbound then listens where `interface` says only: the
          bridge address, plus 127.0.0.1 and ::1 while `services.unbound.resolveLocalQueries`
          is on'';

        check.enable = mkOption {
          type = types.bool;
          default = true;
          description = "Enable ocvm-check@${name}.timer (`ocvm check ${name}` every 15 minutes).";
        };
      };

      config = mkIf (guestBuild != null) {
        boot.kernel = mkDefault guestBuild.kernel;
        boot.initrd = mkDefault guestBuild.initrd;
        boot.cmdline = mkDefault guestBuild.cmdline;
        gateway.health_path = mkDefault config.guest.config.services.ocvm-guest.gateway.readyPath;
      };
    };

  # the option values of one VM as render-config takes them
  vmValues =
    name: vm:
    builtins.removeAttrs vm [
      "_module"
      "enable"
      "autostart"
      "restartIfChanged"
      "guest"
      "caddy"
      "unbound"
      "check"
    ]
    // {
      inherit name;
    };
  rendered = name: vm: renderConfig (vmValues name vm);
  renderedJSON = name: vm: builtins.toJSON (rendered name vm);

  lastPort = s: lib.toInt (lib.last (lib.splitString ":" s));
  # host files a VM reads: ProtectHome=yes hides /home, /root and /run/user from the unit
  vmFiles =
    vm:
    [
      (toString vm.boot.kernel)
      (toString vm.boot.initrd)
    ]
    ++ map (s: s.source) vm.shares
    ++ lib.attrValues vm.secrets.files
    ++ lib.optional (vm.secrets.gateway_token != null) vm.secrets.gateway_token;
  inHome =
    p:
    lib.any (d: lib.hasPrefix d p) [
      "/home/"
      "/root/"
      "/run/user/"
    ];
  subnetOf =
    cidr:
    let
      parts = lib.splitString "/" cidr;
      a = map lib.toInt (lib.splitString "." (builtins.head parts));
      prefix = lib.toInt (lib.last parts);
      ip = lib.foldl' (acc: o: acc * 256 + o) 0 a;
      pow2 = n: lib.foldl' (acc: _: acc * 2) 1 (lib.range 1 n);
      size = pow2 (32 - prefix);
      net = ip - lib.mod ip size;
      octet = i: toString (lib.mod (net / (pow2 (8 * (3 - i)))) 256);
    in
    "${octet 0}.${octet 1}.${octet 2}.${octet 3}/${toString prefix}";

  secretNameOk =
    n: builtins.match "[A-Za-z0-9_-][A-Za-z0-9_.-]{0,63}" n != null && n != "gateway.token" && n != "openclaw.json";
in
{
  options.services.ocvm = {
    enable = mkEnableOption "ocvm, QEMU microVMs for the OpenClaw gateway";
    package = mkOption {
      type = types.package;
      default = pkgs.ocvm or (pkgs.callPackage ../package.nix { });
      defaultText = literalExpression "pkgs.ocvm (ocvm's overlays.default) or ocvm built from this tree";
      description = "The ocvm package: the `ocvm` binary and the units ocvm@.service, ocvm-check@.service/.timer.";
    };
    qemuPackage = mkOption {
      type = types.package;
      default = pkgs.qemu_kvm;
      defaultText = literalExpression "pkgs.qemu_kvm";
      description = "QEMU on the PATH of ocvm@.service (`machine.qemu` is looked up there).";
    };
    vms = mkOption {
      type = types.attrsOf (types.submodule vmModule);
      default = { };
      description = "The VMs, by name (1-32 of `A-Z a-z 0-9 - _`); each becomes /etc/ocvm/NAME.json and ocvm@NAME.service.";
    };
  };

  config = mkIf cfg.enable (mkMerge [
    {
      environment.systemPackages = [ cfg.package ];
      # the template units ocvm@.service, ocvm-check@.service and ocvm-check@.timer
      systemd.packages = [ cfg.package ];

      # QEMU drops to this user (machine.user's default)
      users.users.ocvm = {
        isSystemUser = true;
        group = "ocvm";
        description = "QEMU of the ocvm VMs";
      };
      users.groups.ocvm = { };

      systemd.targets.ocvm-vms = {
        description = "ocvm VMs started at boot";
        wantedBy = [ "multi-user.target" ];
        wants = map (n: "ocvm@${n}.service") (lib.attrNames (lib.filterAttrs (_: vm: vm.autostart) enabledVMs));
      };

      assertions =
        lib.concatLists (
          lib.mapAttrsToList (name: vm: [
            {
              assertion = builtins.match "[A-Za-z0-9_-]{1,32}" name != null;
              message = "services.ocvm.vms.${name}: a VM's name is 1-32 of A-Z a-z 0-9 - _";
            }
            {
              assertion = lib.all secretNameOk (lib.attrNames vm.secrets.files);
              message = "services.ocvm.vms.${name}.secrets.files: a secret's name is 1-64 of A-Z a-z 0-9 _ . -, not starting with '.', and not gateway.token or openclaw.json";
            }
            {
              assertion = lib.all (f: (f.to == "guest") == (f.listen != null) && (f.to == "host") == (f.connect != null)) vm.forwards;
              message = "services.ocvm.vms.${name}.forwards: a forward to the guest has `listen` (and no `connect`), one to the host `connect` (and no `listen`)";
            }
            {
              assertion = !vm.unbound.enable || vm.network != null;
              message = "services.ocvm.vms.${name}.unbound.enable needs a network (it is null)";
            }
            {
              assertion = vm.guest == null || vm.guest ? config.services.ocvm-guest;
              message = "services.ocvm.vms.${name}.guest must be a NixOS system that imports ocvm's nixosModules.guest";
            }
            {
              assertion =
                vm.guest == null
                || !(vm.guest ? config.services.ocvm-guest)
                || vm.guest.config.services.ocvm-guest.gateway.port == vm.gateway.guest_port;
              message = "services.ocvm.vms.${name}: gateway.guest_port (${toString vm.gateway.guest_port}) differs from the guest's services.ocvm-guest.gateway.port";
            }
            {
              assertion =
                vm.guest == null
                || !(vm.guest ? config.services.ocvm-guest)
                || lib.all (n: vm.secrets.files ? ${n}) vm.guest.config.services.ocvm-guest.secrets.files;
              message = "services.ocvm.vms.${name}: the guest expects secrets (services.ocvm-guest.secrets.files) that secrets.files does not name";
            }
          ]) enabledVMs
        )
        ++ [
          {
            assertion =
              let
                sites = lib.mapAttrsToList (_: vm: vm.caddy.address) (lib.filterAttrs (_: vm: vm.caddy.enable) enabledVMs);
              in
              lib.length sites == lib.length (lib.unique sites);
            message = "services.ocvm.vms.*.caddy.address: two VMs have the same Caddy site";
          }
        ];

      warnings = lib.optional (config.networking.nftables.enable or false && config.networking.nftables.flushRuleset or false) ''
        services.ocvm: networking.nftables.flushRuleset is on: every reload of nftables.service
        deletes ocvm's tables (inet ocvm_NAME) until the VM restarts (`ocvm check` says OCVM-L001).
        Set networking.nftables.flushRuleset = false.
      '';
    }

    # one VM: its JSON, its instance drop-in, its check timer
    {
      environment.etc = lib.mapAttrs' (
        name: vm: lib.nameValuePair "ocvm/${name}.json" { text = renderedJSON name vm; }
      ) enabledVMs;

      systemd.services = lib.mapAttrs' (
        name: vm:
        let
          # what ocvm will read (settings included)
          json = rendered name vm;
          timeouts = {
            ready_s = 120;
            shutdown_s = 30;
          } // (json.timeouts or { });
          hostListen = json.gateway.host_listen or "127.0.0.1:18789";
        in
        lib.nameValuePair "ocvm@${name}" {
          overrideStrategy = "asDropin";
          # QEMU for `machine.qemu` (a name looked up in PATH)
          path = [ cfg.qemuPackage ];
          inherit (vm) restartIfChanged;
          restartTriggers = [ (builtins.hashString "sha256" (renderedJSON name vm)) ];
          serviceConfig = mkMerge [
            {
              # ocvm's own bound for down (timeouts.shutdown_s) plus 5 s, as docs/systemd.md says
              TimeoutStopSec = "${toString (timeouts.shutdown_s + 5)}s";
              TimeoutStartSec = "${toString (lib.max 180 (timeouts.ready_s + 60))}s";
            }
            (mkIf (lib.any inHome (vmFiles vm)) { ProtectHome = "read-only"; })
            (mkIf (lib.any (s: !s.read_only) vm.shares) {
              ReadWritePaths = map (s: s.source) (lib.filter (s: !s.read_only) vm.shares);
            })
            (mkIf (lastPort hostListen < 1024) {
              CapabilityBoundingSet = [ "CAP_NET_BIND_SERVICE" ];
            })
          ];
        }
      ) enabledVMs;

      # socket activation: the template's port reset, then this VM's gateway.host_listen
      systemd.sockets = lib.mapAttrs' (
        name: vm:
        lib.nameValuePair "ocvm-gateway@${name}" {
          overrideStrategy = "asDropin";
          wantedBy = [ "sockets.target" ];
          listenStreams = [
            ""
            ((rendered name vm).gateway.host_listen or "127.0.0.1:18789")
          ];
        }
      ) (lib.filterAttrs (_: vm: vm.socketActivation) enabledVMs);

      systemd.timers = lib.mapAttrs' (
        name: vm:
        lib.nameValuePair "ocvm-check@${name}" {
          overrideStrategy = "asDropin";
          wantedBy = [ "timers.target" ];
        }
      ) (lib.filterAttrs (_: vm: vm.check.enable) enabledVMs);
    }

    # Caddy in front of the gateway: https://localhost:8443 -> gateway.host_listen. The gateway
    # refuses (403 proxy_attribution_required) a request with forwarded headers from a loopback
    # proxy, so the site strips them and the request looks like the local client it is; every
    # Caddy client is then "local", hence `bind 127.0.0.1` (docs: /work/shared/OPENCLAW.md).
    (
      let
        sites = lib.filterAttrs (_: vm: vm.caddy.enable) enabledVMs;
      in
      mkIf (sites != { }) {
        services.caddy.enable = true;
        services.caddy.virtualHosts = lib.mapAttrs' (
          name: vm:
          lib.nameValuePair vm.caddy.address {
            extraConfig = ''
              bind 127.0.0.1
              reverse_proxy ${vm.gateway.host_listen} {
                header_up -X-Forwarded-For
                header_up -X-Forwarded-Proto
                header_up -X-Forwarded-Host
                header_up -X-Real-IP
                header_up -Forwarded
              }
            '';
          }
        ) sites;
      }
    )

    # Unbound for the guests, as `ocvm dns-config NAME` renders it: on the bridge address (bound
    # before ocvm makes the bridge: ip-freebind), answering the VM's subnet, logging every query
    # and reply. The host's firewall lets DNS in from the bridge.
    (
      let
        vms = lib.filterAttrs (_: vm: vm.unbound.enable && vm.network != null) enabledVMs;
        addr = vm: builtins.head (lib.splitString "/" vm.network.bridge_address);
        local = config.services.unbound.resolveLocalQueries or false;
      in
      mkIf (vms != { }) {
        services.unbound.enable = true;
        services.unbound.settings.server = {
          interface =
            lib.unique (lib.mapAttrsToList (_: addr) vms)
            ++ lib.optionals local ([ "127.0.0.1" ] ++ lib.optional (config.networking.enableIPv6 or true) "::1");
          access-control = lib.unique (lib.mapAttrsToList (_: vm: "${subnetOf vm.network.bridge_address} allow") vms);
          ip-freebind = true;
          log-queries = true;
          log-replies = true;
        };
        networking.firewall.interfaces = lib.mapAttrs' (
          _: vm:
          lib.nameValuePair vm.network.bridge {
            allowedUDPPorts = [ 53 ];
            allowedTCPPorts = [ 53 ];
          }
        ) vms;
      }
    )
  ]);
}
