# The test host of flake.nix's checks: one VM named openclaw, booting the test guest (given as the
# module argument `guest`), with a secret, the Caddy site and the Unbound resolver.
{ guest, ... }:
{
  services.ocvm.enable = true;
  services.ocvm.vms.openclaw = {
    inherit guest;
    machine.memory_mib = 4096;
    network.egress.allow = [
      {
        host = "api.anthropic.com";
        ports = [ 443 ];
      }
    ];
    secrets.files.telegram = "/run/secrets/telegram-bot-token";
    timeouts.ready_s = 900;
    caddy.enable = true;
    unbound.enable = true;
  };

  boot.loader.grub.enable = false;
  fileSystems."/" = {
    device = "/dev/vda";
    fsType = "ext4";
  };
  system.stateVersion = "25.05";
}
