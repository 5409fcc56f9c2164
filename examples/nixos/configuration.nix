# A NixOS host that runs the OpenClaw gateway in an ocvm microVM named openclaw: the VM's config
# is rendered to /etc/ocvm/openclaw.json, ocvm@openclaw.service starts it at boot (from
# ocvm-vms.target), ocvm-check@openclaw.timer audits it every 15 minutes, Caddy serves
# https://localhost:8443 and Unbound answers (and logs) the guest's DNS lookups.
#
# Import it next to ocvm's nixosModules.host (see ./flake.nix); the guest is a NixOS system
# built with nixosModules.guest from ./guest.nix, handed in as the module argument ocvmGuest.
# Every option is a key of docs/config.md under the same name.
{ ocvmGuest, ... }:
{
  services.ocvm.enable = true;

  services.ocvm.vms.openclaw = {
    # The guest: kernel, initrd (the whole system in a ramdisk) and kernel command line come from
    # it, and the readiness probe becomes its /readyz.
    guest = ocvmGuest;
    # ... or a kernel and initrd of your own, instead of `guest`:
    # boot.kernel = "/var/lib/ocvm/openclaw/vmlinuz";
    # boot.initrd = "/var/lib/ocvm/openclaw/initrd.img";

    # OpenClaw at ready: ~1.8 GB with the system in RAM; a TCG guest took ~3 min to /readyz
    machine.memory_mib = 4096;
    timeouts.ready_s = 900;

    # the only hosts the guest may reach (everything else is dropped and logged)
    network.egress.allow = [
      {
        host = "api.anthropic.com";
        ports = [ 443 ];
      }
    ];

    # A path, never the value: the file stays root's (mode 0600) and reaches the guest through
    # ocvm's read-only secrets share, then the gateway's unit as the credential "telegram".
    secrets.files.telegram = "/run/secrets/telegram-bot-token";

    # the gateway's own settings, over ocvm's secure defaults (bind loopback, token auth, ...)
    gateway.openclaw = {
      agents.defaults.model.primary = "anthropic/claude-opus-4-6";
      channels.telegram.tokenFile = "/run/credentials/openclaw-gateway.service/telegram";
    };

    caddy.enable = true; # https://localhost:8443, bound to 127.0.0.1
    unbound.enable = true; # the guest's resolver (network.dns) on the bridge, logging every lookup
  };
}
