# The VM's JSON config (/etc/ocvm/NAME.json, docs/config.md) from its option values.
#
#   import ./render-config.nix vm  ->  an attrset; builtins.toJSON of it is the file
#
# VM is a plain attrset shaped like the JSON (the host module passes the values of
# services.ocvm.vms.NAME; tests/integration/nix.sh passes literals), so this file uses builtins
# only and evaluates without nixpkgs. Keys are docs/config.md's. A key VM leaves out stays out
# (ocvm's default applies); keys that are not ocvm's (enable, guest, caddy, ...) are ignored;
# VM.settings is merged over the result last, objects key by key, anything else replacing.
#
# Secrets: only their paths are written. A secret given as a Nix path is written as the string
# of that path, never copied into the store; one that already is in the store (a string with
# store context, or under the store directory) is refused: the store is world-readable.
vm:
let
  inherit (builtins)
    attrNames
    filter
    hasContext
    intersectAttrs
    isAttrs
    isPath
    isString
    listToAttrs
    mapAttrs
    substring
    stringLength
    storeDir
    ;

  # the keys of KEYS that A has, with A's values
  pick = keys: a: intersectAttrs (listToAttrs (map (k: { name = k; value = null; }) keys)) a;
  # attrs of A that are not null
  dropNulls = a: listToAttrs (map (k: { name = k; value = a.${k}; }) (filter (k: a.${k} != null) (attrNames a)));
  # SECTION of vm through F, if vm has it (a null section stays null: "network": null)
  section = name: f: if vm ? ${name} then { ${name} = if vm.${name} == null then null else f vm.${name}; } else { };

  # A kernel or initrd: a Nix path is copied into the store (so the file outlives the source
  # tree it came from), a string (a store path from config.system.build, or a host file) is
  # written as it is.
  bootFile = v: if isPath v then "${v}" else v;

  isInStore = s: substring 0 (stringLength storeDir + 1) s == storeDir + "/";
  secretPath =
    what: v:
    let
      s = if isPath v then toString v else v;
    in
    if v == null then
      null
    else if !(isString s) then
      throw "ocvm: ${what}: expected a file name, got a ${builtins.typeOf v}"
    else if hasContext s || isInStore s then
      throw "ocvm: ${what}: ${builtins.unsafeDiscardStringContext s} is in the Nix store, which everyone can read; name a file outside it (e.g. under /run/secrets or /var/lib)"
    else
      s;

  # RFC 7396-style merge, as the JSON's own `gateway.openclaw` merge: objects key by key,
  # anything else (a list, a string, null) replacing
  merge =
    a: b:
    if isAttrs a && isAttrs b then
      a // mapAttrs (k: v: if a ? ${k} then merge a.${k} v else v) b
    else
      b;

  rendered =
    { name = vm.name; }
    // section "machine" (
      pick [
        "type"
        "accel"
        "vcpu"
        "memory_mib"
        "qemu"
        "user"
        "extra_args"
        "unsafe_qemu_as_root"
        "unsafe_extra_args"
      ]
    )
    // section "boot" (
      b:
      pick [ "cmdline" "unsafe_cmdline" ] b
      // (if b ? kernel then { kernel = bootFile b.kernel; } else { })
      // (if b ? initrd then { initrd = if b.initrd == null then null else bootFile b.initrd; } else { })
    )
    // section "vsock" (pick [ "backend" "guest_cid" ])
    // section "network" (
      n:
      pick [
        "bridge"
        "bridge_address"
        "tap"
        "guest_address"
        "mac"
        "uplink"
        "dns"
      ] n
      // (
        if n ? egress then
          {
            egress = if n.egress ? allow then { allow = map (pick [ "host" "ports" ]) n.egress.allow; } else { };
          }
        else
          { }
      )
    )
    // section "gateway" (
      pick [
        "guest_port"
        "host_listen"
        "health_path"
        "probe_interval_s"
        "probe_failures"
        "probe_restart_after"
        "openclaw"
        "unsafe_remote_gateway"
        "unsafe_openclaw_bind"
        "unsafe_openclaw_auth"
        "unsafe_openclaw_tools"
      ]
    )
    # a forward has either listen (to the guest) or connect (to the host): the other is null in
    # the module's options and must not be written at all
    // section "forwards" (map (f: dropNulls (pick [ "to" "listen" "connect" "guest_port" "unsafe_remote_listen" ] f)))
    // section "shares" (map (pick [ "tag" "source" "proto" "read_only" ]))
    // section "secrets" (pick [ "files" "gateway_token" ])
    // section "restart" (pick [ "max_restarts" "backoff_initial_ms" "backoff_max_ms" ])
    // section "timeouts" (pick [ "ready_s" "shutdown_s" ]);

  merged = merge rendered (vm.settings or { });
  # settings may name secrets too: the same rule for those
  checkedSecrets =
    s:
    if !(isAttrs s) then
      s
    else
      s
      // (if isAttrs (s.files or null) then { files = mapAttrs (n: secretPath "secrets.files.${n}") s.files; } else { })
      // (if s ? gateway_token then { gateway_token = secretPath "secrets.gateway_token" s.gateway_token; } else { });
in
merged // (if merged ? secrets then { secrets = checkedSecrets merged.secrets; } else { })
