# A host flake using ocvm: `nixos-rebuild switch --flake .#host`.
{
  inputs = {
    nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";
    # your clone of ocvm (or wherever you fetch it from)
    ocvm.url = "git+file:///srv/ocvm";
    ocvm.inputs.nixpkgs.follows = "nixpkgs";
  };

  outputs =
    { nixpkgs, ocvm, ... }:
    let
      system = "x86_64-linux";
      guest = nixpkgs.lib.nixosSystem {
        inherit system;
        modules = [
          ocvm.nixosModules.guest
          ./guest.nix
        ];
      };
    in
    {
      nixosConfigurations.host = nixpkgs.lib.nixosSystem {
        inherit system;
        specialArgs.ocvmGuest = guest;
        modules = [
          ocvm.nixosModules.host
          ./configuration.nix
          # your machine's own: boot loader, file systems, users
          ./hardware-configuration.nix
        ];
      };
    };
}
