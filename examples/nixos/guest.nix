# The guest of ./configuration.nix: NixOS with ocvm's nixosModules.guest and the OpenClaw gateway
# as a plain unit written here. ocvm-guest relay carries the host's vsock port 18789 to
# 127.0.0.1:18789; the gateway reads ocvm's rendered config (bind loopback, its port, the token)
# from OPENCLAW_CONFIG_PATH, a systemd credential; the boot, and so READY=1 to the host, completes
# once it answers /readyz.
{
  lib,
  modulesPath,
  pkgs,
  ...
}:
{
  # the whole system in the initrd (no disk: ocvm boots a kernel and an initrd)
  imports = [ (modulesPath + "/installer/netboot/netboot.nix") ];

  services.ocvm-guest.enable = true;
  # host secrets.files the gateway gets as credentials (besides gateway.token and openclaw.json)
  services.ocvm-guest.secrets.files = [ "telegram" ];

  # nixpkgs marks openclaw with knownVulnerabilities (an LLM agent with a shell): ocvm's VM is
  # the boundary it is run in
  nixpkgs.config.allowInsecurePredicate = pkg: lib.getName pkg == "openclaw";

  systemd.services.openclaw-gateway = {
    description = "OpenClaw gateway";
    wantedBy = [ "multi-user.target" ];
    environment = {
      HOME = "/var/lib/openclaw";
      OPENCLAW_STATE_DIR = "/var/lib/openclaw";
      OPENCLAW_NO_AUTO_UPDATE = "1";
      OPENCLAW_DISABLE_BONJOUR = "1";
      OPENCLAW_NO_RESPAWN = "1";
      DO_NOT_TRACK = "1";
    };
    serviceConfig = {
      ExecStart = "${lib.getExe pkgs.openclaw} gateway run";
      DynamicUser = true;
      StateDirectory = "openclaw";
      # its start-up has a hard 5 s lease timeout a slow guest sometimes hits: retry the process
      Restart = "on-failure";
      RestartSec = "2s";
    };
  };

  networking.hostName = "openclaw";
  system.stateVersion = "25.05";
}
