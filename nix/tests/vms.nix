# The VMs tests/integration/nix.sh renders, as plain attrsets (what a user writes under
# services.ocvm.vms.NAME). DIR holds the stand-in files the test makes: vmlinuz, initrd.img, the
# secrets (0600), share/ and rw/ (directories); USER is machine.user (a user that exists).
{ dir, user }:
{
  # examples/nixos/configuration.nix's VM, with stand-in kernel and initrd for the guest's
  openclaw = {
    name = "openclaw";
    machine.memory_mib = 4096;
    machine.user = user;
    boot.kernel = "${dir}/vmlinuz";
    boot.initrd = "${dir}/initrd.img";
    gateway.health_path = "/readyz";
    gateway.openclaw = {
      agents.defaults.model.primary = "anthropic/claude-opus-4-6";
      channels.telegram.tokenFile = "/run/credentials/openclaw-gateway.service/telegram";
    };
    network.egress.allow = [
      {
        host = "api.anthropic.com";
        ports = [ 443 ];
      }
    ];
    secrets.files.telegram = "${dir}/telegram-token";
    timeouts.ready_s = 900;
    caddy.enable = true;
    unbound.enable = true;
  };

  # every key of docs/config.md set (no unsafe_* waiver in force: each is false)
  full = {
    name = "full";
    socketActivation = true;
    machine = {
      type = "q35";
      accel = "tcg";
      vcpu = 4;
      memory_mib = 3072;
      qemu = "qemu-system-x86_64";
      inherit user;
      extra_args = [
        "-rtc"
        "base=utc"
      ];
      unsafe_qemu_as_root = false;
      unsafe_extra_args = false;
    };
    boot = {
      kernel = "${dir}/vmlinuz";
      initrd = "${dir}/initrd.img";
      cmdline = "console=ttyS0 panic=-1 quiet";
      unsafe_cmdline = false;
    };
    vsock = {
      backend = "user";
      guest_cid = 7;
    };
    network = {
      bridge = "br-full";
      bridge_address = "10.83.7.1/28";
      tap = "vm-full";
      guest_address = "10.83.7.2";
      mac = "02:00:00:00:07:02";
      uplink = "auto";
      dns = "10.83.7.1";
      egress.allow = [
        {
          host = "api.anthropic.com";
          ports = [ 443 ];
        }
        {
          host = "192.0.2.10";
          ports = [
            80
            443
          ];
        }
      ];
    };
    gateway = {
      guest_port = 18789;
      host_listen = "127.0.0.1:18800";
      health_path = "/readyz";
      openclaw = {
        agents.defaults.model.primary = "anthropic/claude-opus-4-6";
        gateway.controlUi.allowedOrigins = [ "https://localhost:8444" ];
        gateway.terminal = null;
        logging.level = "debug";
      };
      unsafe_remote_gateway = false;
      unsafe_openclaw_bind = false;
      unsafe_openclaw_auth = false;
      unsafe_openclaw_tools = false;
    };
    forwards = [
      {
        to = "guest";
        listen = "tcp:127.0.0.1:9000";
        guest_port = 9000;
        unsafe_remote_listen = false;
      }
      {
        to = "guest";
        listen = "unix:${dir}/fwd.sock";
        guest_port = 9001;
      }
      {
        to = "host";
        guest_port = 18790;
        connect = "tcp:127.0.0.1:18790";
      }
    ];
    shares = [
      {
        tag = "data";
        source = "${dir}/share";
        proto = "virtiofs";
        read_only = true;
      }
      {
        tag = "work";
        source = "${dir}/rw";
        proto = "virtiofs";
        read_only = false;
      }
    ];
    secrets = {
      files = {
        telegram = "${dir}/telegram-token";
        "anthropic.key" = "${dir}/anthropic-key";
      };
      gateway_token = "${dir}/gateway-token";
    };
    restart = {
      max_restarts = 3;
      backoff_initial_ms = 250;
      backoff_max_ms = 10000;
    };
    timeouts = {
      ready_s = 300;
      shutdown_s = 40;
    };
    # merged last: wins over timeouts.ready_s above
    settings.timeouts.ready_s = 600;
    caddy = {
      enable = true;
      address = "localhost:8444";
    };
    unbound.enable = true;
    check.enable = true;
  };

  # a waiver in force: ocvm check must say so (OCVM-U001: it waives nothing here)
  unsafe = {
    name = "unsafe";
    machine.user = user;
    machine.unsafe_extra_args = true;
    boot.kernel = "${dir}/vmlinuz";
    network = null;
    vsock = {
      backend = "user";
      guest_cid = 5;
    };
  };
}
