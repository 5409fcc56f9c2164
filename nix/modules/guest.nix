# nixosModules.guest: a NixOS guest of ocvm.
#
#   services.ocvm-guest.enable = true;   # and a gateway unit, by default openclaw-gateway.service
#
# What it does, and why:
# - `ocvm-guest relay` (ocvm-guest-relay.service, Type=notify, Restart=always) carries the host's
#   vsock ports to the guest's loopback: every `ocvm.relay=LISTEN,CONNECT` the host puts on the
#   kernel command line (vsock:any:18789 -> tcp:127.0.0.1:18789, and the forwards). It starts
#   before the gateway; it needs the vsock transport, vmw_vsock_virtio_transport
#   (boot.kernelModules).
# - READY. The host passes `systemd.set_credential=vmm.notify_socket:vsock-stream:2:18788` on
#   the kernel command line, so the guest's systemd itself sends READY=1 to ocvm once the boot
#   transaction is done (the default target reached); no ocvm code is needed for it. To make
#   that mean "the gateway is ready", ocvm-gateway-ready.service, a oneshot ordered before
#   multi-user.target, waits until the gateway answers GET /readyz (200) on 127.0.0.1: the boot
#   is not done, so READY=1 is not sent, until it does. Should the gateway never get ready the
#   oneshot fails at its timeout and systemd still reports the (degraded) boot as done; ocvm's own
#   probe of `gateway.health_path` through the chain (the host module makes it /readyz for a
#   NixOS guest) then keeps the VM from counting as ready, and ocvm restarts it at
#   `timeouts.ready_s`. `ocvm-guest notify READY=1` is for guests without systemd (the busybox
#   demo guest); it is not used here, so READY is sent once.
# - The gateway listens on loopback only: its config (ocvm's, below) says `gateway.bind =
#   "loopback"`, its port must not be opened in the firewall (asserted, also per interface and
#   in ranges), and ocvm-gateway-ready stops the gateway instead of reporting ready if anything
#   listens on its port beyond 127.0.0.0/8 or ::1.
# - Secrets: ocvm stages them (the gateway token, the gateway's openclaw.json rendered with it,
#   each host `secrets.files` entry) in the read-only virtiofs share `ocvm-secrets`, mounted here
#   at /run/shares/ocvm-secrets; the gateway's unit gets them as systemd credentials
#   (LoadCredential=, so they are in $CREDENTIALS_DIRECTORY, readable by the unit's user only)
#   and OPENCLAW_CONFIG_PATH=%d/openclaw.json.
# The gateway unit is whatever `gateway.unit` names: a plain unit you write
# (systemd.services.openclaw-gateway), or one a package or another module brings; this module
# adds ordering, credentials and the environment to it (a drop-in when a package provides it).
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
    types
    literalExpression
    ;
  cfg = config.services.ocvm-guest;
  gw = cfg.gateway;
  gatewayService = "${gw.unit}.service";
  gatewayUnit = config.systemd.services.${gw.unit};
  fw = config.networking.firewall;
  inRanges = port: lib.any (r: r.from <= port && port <= r.to);
  openIn = fwc: lib.elem gw.port (fwc.allowedTCPPorts or [ ]) || inRanges gw.port (fwc.allowedTCPPortRanges or [ ]);
  credentialNames = [
    "gateway.token"
    "openclaw.json"
  ] ++ cfg.secrets.files;
in
{
  options.services.ocvm-guest = {
    enable = mkEnableOption "the guest side of ocvm: vsock relay, readiness, secrets";
    package = mkOption {
      type = types.package;
      default = pkgs.ocvm-guest or (pkgs.callPackage ../package.nix { guest = true; });
      defaultText = literalExpression "pkgs.ocvm-guest (ocvm's overlays.default) or the static ocvm-guest built from this tree";
      description = "The package with bin/ocvm-guest.";
    };
    gateway = {
      unit = mkOption {
        type = types.strMatching "[^/ ]+";
        default = "openclaw-gateway";
        description = "The gateway's systemd service, without `.service` (one you write, or one a package brings).";
      };
      port = mkOption {
        type = types.port;
        default = 18789;
        description = "The gateway's port on the guest's loopback: the host's `gateway.guest_port`.";
      };
      readyPath = mkOption {
        type = types.strMatching "/.*";
        default = "/readyz";
        description = "GET path that answers 200 once the gateway is ready (OpenClaw: /readyz; /health answers early).";
      };
      readyTimeoutSec = mkOption {
        type = types.ints.positive;
        default = 900;
        description = "How long ocvm-gateway-ready waits for it (an OpenClaw gateway took about 3 minutes in a TCG guest). Keep the host's `timeouts.ready_s` above it.";
      };
      configPathVariable = mkOption {
        type = types.nullOr types.str;
        default = "OPENCLAW_CONFIG_PATH";
        description = "Environment variable of the gateway's unit set to the credential `openclaw.json` (ocvm's rendered gateway config with its token); null: none.";
      };
    };
    secrets = {
      enable = mkOption {
        type = types.bool;
        default = true;
        description = "Mount ocvm's secrets share and pass its files to the gateway's unit as credentials.";
      };
      tag = mkOption {
        type = types.str;
        default = "ocvm-secrets";
        description = "The share's virtiofs tag (ocvm's is `ocvm-secrets`).";
      };
      mountPoint = mkOption {
        type = types.str;
        default = "/run/shares/ocvm-secrets";
        description = "Where it is mounted (read-only, nosuid, nodev, noexec).";
      };
      files = mkOption {
        type = types.listOf types.str;
        default = [ ];
        example = [ "telegram" ];
        description = "Names of the host's `secrets.files` the gateway gets as credentials, besides gateway.token and openclaw.json.";
      };
    };
    network.enable = mkOption {
      type = types.bool;
      default = true;
      description = "Configure the first Ethernet interface from the host's `ocvm.ip=`, `ocvm.gw=`, `ocvm.dns=` kernel parameters (the TAP network; nothing when they are absent).";
    };
  };

  config = mkIf cfg.enable (
    lib.mkMerge [
      {
        # virtio-mmio devices (microvm), virtio-pci (q35), the net, rng and vsock devices
        boot.initrd.availableKernelModules = [
          "virtio_mmio"
          "virtio_pci"
          "virtio_net"
          "virtio_rng"
          "virtiofs"
        ];
        boot.kernelModules = [ "vmw_vsock_virtio_transport" ];

        # How the host boots this system: ocvm's boot.kernel, boot.initrd and boot.cmdline (the
        # host module takes them from here). A netboot ramdisk (modulesPath +
        # "/installer/netboot/netboot.nix": the whole system in the initrd) when imported, else the
        # plain initrd, with a root file system of your own.
        system.build.ocvm = {
          kernel = "${config.system.build.kernel}/${config.system.boot.loader.kernelFile}";
          initrd =
            if config.system.build ? netbootRamdisk then
              "${config.system.build.netbootRamdisk}/initrd"
            else
              "${config.system.build.initialRamdisk}/${config.system.boot.loader.initrdFile}";
          cmdline = lib.concatStringsSep " " (
            [
              "console=ttyS0"
              "panic=-1"
              "init=${config.system.build.toplevel}/init"
            ]
            ++ config.boot.kernelParams
          );
        };

        systemd.services.ocvm-guest-relay = {
          description = "ocvm guest relay: the host's vsock ports to the guest's loopback";
          wantedBy = [ "multi-user.target" ];
          before = [ gatewayService ];
          after = [ "systemd-modules-load.service" ];
          unitConfig.StartLimitIntervalSec = 0;
          serviceConfig = {
            # READY=1 once every listener is open (NOTIFY_SOCKET)
            Type = "notify";
            NotifyAccess = "main";
            # no arguments: every ocvm.relay=LISTEN,CONNECT on the kernel command line
            ExecStart = "${cfg.package}/bin/ocvm-guest relay";
            Restart = "always";
            RestartSec = "1s";
            DynamicUser = true;
            CapabilityBoundingSet = "";
            NoNewPrivileges = true;
            ProtectSystem = "strict";
            ProtectHome = true;
            PrivateTmp = true;
            PrivateDevices = true;
            ProtectKernelTunables = true;
            ProtectKernelModules = true;
            ProtectKernelLogs = true;
            ProtectControlGroups = true;
            ProtectClock = true;
            ProtectHostname = true;
            RestrictAddressFamilies = [
              "AF_VSOCK"
              "AF_INET"
              "AF_INET6"
              "AF_UNIX"
            ];
            RestrictNamespaces = true;
            RestrictRealtime = true;
            RestrictSUIDSGID = true;
            LockPersonality = true;
            MemoryDenyWriteExecute = true;
            SystemCallArchitectures = "native";
            SystemCallFilter = [ "@system-service" ];
          };
        };

        systemd.services.${gw.unit} = {
          after = [ "ocvm-guest-relay.service" ];
          wants = [ "ocvm-guest-relay.service" ];
        };

        systemd.services.ocvm-gateway-ready = {
          description = "ocvm: wait until the gateway answers GET ${gw.readyPath} (then the boot, and READY=1 to the host, completes)";
          wantedBy = [ "multi-user.target" ];
          before = [ "multi-user.target" ];
          after = [
            gatewayService
            "ocvm-guest-relay.service"
          ];
          wants = [ gatewayService ];
          path = [
            pkgs.curl
            pkgs.iproute2
            pkgs.gawk
            pkgs.gnugrep
            config.systemd.package
          ];
          serviceConfig = {
            Type = "oneshot";
            RemainAfterExit = true;
            TimeoutStartSec = gw.readyTimeoutSec;
          };
          script = ''
            url=http://127.0.0.1:${toString gw.port}${gw.readyPath}
            until curl -fsS -o /dev/null --max-time 5 "$url"; do sleep 1; done
            # nothing may listen on the gateway's port beyond loopback
            beyond=$(ss -Hltn 'sport = :${toString gw.port}' | awk '{ print $4 }' |
              grep -Ev '^(127\.[0-9.]+|\[::1\]|\[::ffff:127\.[0-9.]+\]):[0-9]+$' || true)
            if [ -n "$beyond" ]; then
              echo "the gateway listens beyond loopback: $beyond; stopping ${gatewayService}" >&2
              systemctl stop ${gatewayService}
              exit 1
            fi
            echo "the gateway answers $url"
          '';
        };

        assertions = [
          {
            assertion = !(openIn fw);
            message = "services.ocvm-guest: the gateway's port ${toString gw.port} is open in networking.firewall.allowedTCPPorts or allowedTCPPortRanges; the gateway is reached over vsock only";
          }
          {
            assertion = !(lib.any openIn (lib.attrValues (fw.interfaces or { })));
            message = "services.ocvm-guest: the gateway's port ${toString gw.port} is open in networking.firewall.interfaces.*.allowedTCPPorts or allowedTCPPortRanges; the gateway is reached over vsock only";
          }
        ];
        warnings =
          lib.optional (!fw.enable) "services.ocvm-guest: the guest's firewall is off; nothing but the gateway's own bind keeps its port off the TAP network"
          ++ lib.optional (gatewayUnit.script == "" && !(gatewayUnit.serviceConfig ? ExecStart)) "services.ocvm-guest: ${gatewayService} has no ExecStart= in this configuration; it must come from a package in systemd.packages (services.ocvm-guest.gateway.unit names it)";
      }

      (mkIf cfg.secrets.enable {
        fileSystems.${cfg.secrets.mountPoint} = {
          device = cfg.secrets.tag;
          fsType = "virtiofs";
          options = [
            "ro"
            "nosuid"
            "nodev"
            "noexec"
          ];
        };
        systemd.services.${gw.unit} = {
          unitConfig.RequiresMountsFor = [ cfg.secrets.mountPoint ];
          serviceConfig.LoadCredential = map (n: "${n}:${cfg.secrets.mountPoint}/${n}") credentialNames;
          environment = lib.optionalAttrs (gw.configPathVariable != null) {
            ${gw.configPathVariable} = "%d/openclaw.json";
          };
        };
      })

      (mkIf cfg.network.enable {
        # the TAP has no DHCP server: the address comes from the kernel command line
        networking.useDHCP = lib.mkDefault false;
        systemd.services.ocvm-guest-network = {
          description = "ocvm: the guest's address, route and resolver from ocvm.ip=, ocvm.gw=, ocvm.dns=";
          wantedBy = [ "multi-user.target" ];
          before = [
            "network.target"
            gatewayService
          ];
          wants = [ "network.target" ];
          after = [ "systemd-udevd.service" ];
          path = [
            pkgs.iproute2
            pkgs.coreutils
          ] ++ lib.optional config.networking.resolvconf.enable config.networking.resolvconf.package;
          serviceConfig = {
            Type = "oneshot";
            RemainAfterExit = true;
          };
          script = ''
            addr= gw= dns=
            for arg in $(cat /proc/cmdline); do
              case $arg in
              ocvm.ip=*) addr=''${arg#*=} ;;
              ocvm.gw=*) gw=''${arg#*=} ;;
              ocvm.dns=*) dns=''${arg#*=} ;;
              esac
            done
            [ -n "$addr" ] || { echo "no ocvm.ip= on the kernel command line: no TAP network"; exit 0; }
            dev=
            for i in $(seq 100); do
              for d in /sys/class/net/*; do
                [ "$(cat "$d/type" 2>/dev/null)" = 1 ] && [ -e "$d/device" ] && { dev=''${d##*/}; break; }
              done
              [ -n "$dev" ] && break
              sleep 0.1
            done
            [ -n "$dev" ] || { echo "no Ethernet interface for $addr" >&2; exit 1; }
            ip addr replace "$addr" dev "$dev"
            ip link set "$dev" up
            [ -z "$gw" ] || ip route replace default via "$gw" dev "$dev"
            if [ -n "$dns" ]; then
              ${
                if config.networking.resolvconf.enable then
                  ''echo "nameserver $dns" | resolvconf -a "$dev.ocvm"''
                else
                  ''echo "nameserver $dns" > /etc/resolv.conf''
              }
            fi
            echo "$dev: $addr via ''${gw:-none}, resolver ''${dns:-none}"
          '';
        };
      })
    ]
  );
}
