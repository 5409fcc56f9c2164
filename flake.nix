{
  description = "ocvm: the OpenClaw gateway in a QEMU microVM, supervised; NixOS host and guest modules";

  inputs.nixpkgs.url = "github:NixOS/nixpkgs/nixos-unstable";

  outputs =
    { self, nixpkgs }:
    let
      system = "x86_64-linux";
      inherit (nixpkgs) lib;
      pkgs = import nixpkgs {
        inherit system;
        overlays = [ self.overlays.default ];
      };

      # the test guest and host of `checks` (nix/tests/)
      testGuest = lib.nixosSystem {
        inherit system;
        modules = [
          self.nixosModules.guest
          ./nix/tests/guest.nix
        ];
      };
      testHost = lib.nixosSystem {
        inherit system;
        modules = [
          self.nixosModules.host
          ./nix/tests/host.nix
        ];
        specialArgs.guest = testGuest;
      };
      # Evaluates a whole NixOS system (its assertions and every unit) without building it: the
      # check's output is the system's derivation path.
      evaluates =
        name: sys: extra:
        pkgs.runCommand "ocvm-eval-${name}"
          (
            {
              toplevel = builtins.unsafeDiscardStringContext sys.config.system.build.toplevel.drvPath;
            }
            // extra
          )
          ''
            echo "$toplevel" >$out
          '';
    in
    {
      overlays.default = final: prev: {
        ocvm = final.callPackage ./nix/package.nix { };
        ocvm-guest = final.callPackage ./nix/package.nix { guest = true; };
      };

      packages.${system} = {
        default = pkgs.ocvm;
        inherit (pkgs) ocvm ocvm-guest;
      };

      nixosModules = {
        host = ./nix/modules/host.nix;
        guest = ./nix/modules/guest.nix;
        default = self.nixosModules.host;
      };

      checks.${system} = {
        package = pkgs.ocvm;
        ocvm-guest = pkgs.ocvm-guest;
        # the unit the template gets from the package, with its ExecStart pointed at it
        units = pkgs.runCommand "ocvm-units" { } ''
          grep -qx 'ExecStart=${pkgs.ocvm}/bin/ocvm up %i' ${pkgs.ocvm}/lib/systemd/system/ocvm@.service
          test -f ${pkgs.ocvm}/lib/systemd/system/ocvm-check@.service
          test -f ${pkgs.ocvm}/lib/systemd/system/ocvm-check@.timer
          touch $out
        '';
        # (the rendered /etc/ocvm/openclaw.json goes along, its store paths not built)
        host = evaluates "host" testHost {
          json = builtins.unsafeDiscardStringContext testHost.config.environment.etc."ocvm/openclaw.json".text;
        };
        guest = evaluates "guest" testGuest { };
      };

      devShells.${system}.default = pkgs.mkShell {
        inputsFrom = [ pkgs.ocvm ];
        packages = with pkgs; [
          clang
          gdb
          qemu_kvm
          virtiofsd
          busybox
          cpio
          caddy
          nftables
          iproute2
          socat
          curl
          python3
          nix
        ];
      };
    };
}
