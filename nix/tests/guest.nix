# The test guest of flake.nix's checks: a NixOS system as ocvm boots it (the whole system in a
# netboot ramdisk) with nixosModules.guest and a plain gateway unit written here: a stand-in that
# answers GET /readyz on 127.0.0.1:18789, as the OpenClaw gateway does once it is ready.
{ modulesPath, pkgs, ... }:
let
  readyDir = pkgs.writeTextDir "readyz" "ok\n";
in
{
  imports = [ (modulesPath + "/installer/netboot/netboot.nix") ];

  services.ocvm-guest.enable = true;
  services.ocvm-guest.secrets.files = [ "telegram" ];

  systemd.services.openclaw-gateway = {
    description = "stand-in for the OpenClaw gateway";
    wantedBy = [ "multi-user.target" ];
    serviceConfig = {
      ExecStart = "${pkgs.python3}/bin/python3 -m http.server --bind 127.0.0.1 --directory ${readyDir} 18789";
      DynamicUser = true;
    };
  };

  networking.hostName = "openclaw";
  system.stateVersion = "25.05";
}
