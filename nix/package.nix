# ocvm built with CMake from this tree (callPackage it; flake.nix and overlays.default do).
#   guest = false: `ocvm` and the systemd units ocvm@.service, ocvm-gateway@.socket,
#                  ocvm-check@.service and ocvm-check@.timer in $out/lib/systemd/system (NixOS:
#                  systemd.packages), their /usr/bin/ocvm pointed at $out/bin/ocvm.
#   guest = true:  `ocvm-guest` alone, linked -static against glibc (the CMake target of the same
#                  name, as scripts/build-guest builds it): it runs in any guest, NixOS or a
#                  busybox initramfs. pkgsStatic (musl) is not used: CMake's configure step needs
#                  libsystemd, libvirt, nftables ... even for this one target, and those do not
#                  all build statically.
# The unit suites are off (doCheck = false): several need root, network namespaces or QEMU,
# which the Nix sandbox does not give. `ocvm.overrideAttrs { doCheck = true; }` runs the unit
# suites (ctest -R '^unit/'), the ones that can run in a sandbox; the rest skip (exit 77).
{
  lib,
  stdenv,
  cmake,
  pkg-config,
  systemd,
  jansson,
  libnl,
  nftables,
  libvirt,
  check,
  libseccomp,
  virtiofsd,
  glibc,
  guest ? false,
}:
let
  root = ../.;
  # The tree minus what is not source: build directories (build, build-asan, ...) at the top,
  # VCS data, Nix results, and the Nix files themselves (editing a module must not rebuild ocvm).
  src = lib.cleanSourceWith {
    name = "ocvm-source";
    src = root;
    filter =
      path: type:
      let
        rel = lib.removePrefix (toString root + "/") (toString path);
        top = builtins.head (lib.splitString "/" rel);
      in
      !(
        (type == "directory" && lib.hasPrefix "build" top && rel == top)
        || lib.elem top [ ".git" "result" "flake.nix" "flake.lock" "nix" ]
        || lib.hasPrefix "result-" top
      );
  };
  version = builtins.head (
    builtins.match ".*project\\(ocvm VERSION ([0-9.]+) .*" (builtins.readFile (root + "/CMakeLists.txt"))
  );
  attrs = {
    pname = if guest then "ocvm-guest" else "ocvm";
    inherit version src;

    nativeBuildInputs = [
      cmake
      pkg-config
    ];
    # CMakeLists.txt asks pkg-config for all of these, whichever target is built.
    buildInputs = [
      systemd
      jansson
      libnl
      nftables
      libvirt
      check
      libseccomp
    ] ++ lib.optional guest glibc.static;

    cmakeFlags = [
      # a newer compiler may warn where Debian 12's GCC 12 does not: do not fail a package on it
      (lib.cmakeBool "OCVM_WERROR" false)
      (lib.cmakeBool "OCVM_GUEST" guest)
    ];

    postPatch = ''
      # the build runs scripts/check-layers (a bash script)
      patchShebangs scripts
      # ocvm starts one virtiofsd per virtiofs share (the secrets share is always there); Debian
      # keeps it in qemu-system-common, Nix in its own package
      substituteInPlace launcher/virtiofsd.h \
        --replace-fail '"/usr/lib/qemu/virtiofsd"' '"${lib.getExe virtiofsd}"'
    '';

    postInstall = lib.optionalString (!guest) ''
      units=$out/lib/systemd/system
      for u in $units/ocvm@.service $units/ocvm-gateway@.socket $units/ocvm-check@.service \
        $units/ocvm-check@.timer; do
        [ -f "$u" ] || { echo "missing $u: CMakeLists.txt must install it"; exit 1; }
      done
      substituteInPlace $units/ocvm@.service $units/ocvm-check@.service \
        --replace-fail /usr/bin/ocvm $out/bin/ocvm
      install -Dm644 -t $out/share/doc/ocvm ../README.md ../docs/*.md
      substituteInPlace $units/ocvm@.service $units/ocvm-gateway@.socket \
        $units/ocvm-check@.service $units/ocvm-check@.timer \
        --replace-quiet /usr/share/doc/ocvm $out/share/doc/ocvm
    '';

    doCheck = false;
    checkPhase = ''
      runHook preCheck
      ctest --output-on-failure -R '^unit/'
      runHook postCheck
    '';

    meta = {
      description =
        if guest then
          "ocvm's static guest helper: vsock relay and READY notification inside the VM"
        else
          "QEMU microVM launcher and supervisor for the OpenClaw gateway";
      platforms = [ "x86_64-linux" ];
      mainProgram = if guest then "ocvm-guest" else "ocvm";
    };
  };

  # the guest: the one static binary, nothing else of the tree
  guestAttrs = {
    buildFlags = [ "ocvm-guest" ];
    hardeningDisable = [ "pie" ];
    installPhase = ''
      runHook preInstall
      install -Dm755 ocvm-guest $out/bin/ocvm-guest
      runHook postInstall
    '';
    # it must need no loader and no shared library
    doInstallCheck = true;
    installCheckPhase = ''
      if ''${READELF:-readelf} -l $out/bin/ocvm-guest | grep -q 'program interpreter'; then
        echo "ocvm-guest is not static"; exit 1
      fi
    '';
  };
in
stdenv.mkDerivation (attrs // lib.optionalAttrs guest guestAttrs)
