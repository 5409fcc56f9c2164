# launcher/: the CLI verbs, supervisor, QEMU argv, QMP and runtime dir. The top layer: it fills
# the libraries' input structs from the config. Everything but main() and the verbs is a library,
# so the unit tests link the same code.
add_library(ocvm_launcher STATIC
  launcher/argv.c
  launcher/net_plan.c
  launcher/secrets.c
  launcher/qemu_argv.c
  launcher/host_facts.c
  launcher/runtime_dir.c
  launcher/state.c
  launcher/qmp.c
  launcher/supervisor.c
  launcher/run_log.c
  launcher/console_watch.c
  launcher/notify.c
  launcher/health.c
  launcher/liveness.c
  launcher/guest_notify.c
  launcher/vsock_host.c
  launcher/socket_activation.c
  launcher/backend_child.c
  launcher/child_proc.c
  launcher/relay_child.c
  launcher/child_lines.c
  launcher/virtiofsd.c
  launcher/privileges.c
  launcher/qemu_reaper.c
  launcher/qemu_proc.c
  launcher/qemu_exec.c
  launcher/vm_lookup.c
  launcher/libvirt_xml.c
  launcher/libvirt_import.c
  launcher/libvirt_domain.c
  launcher/vm_user.c
  launcher/sidecar.c
  launcher/sidecar_unit.c
)
target_link_libraries(ocvm_launcher PUBLIC ocvm_policy ocvm_config ocvm_netsetup ocvm_vsock ocvm_common
  PkgConfig::SYSTEMD PkgConfig::JANSSON PkgConfig::LIBVIRT PkgConfig::LIBXML)

add_executable(ocvm launcher/main.c launcher/cli.c launcher/cli_up.c launcher/cli_down.c
  launcher/cli_status.c launcher/cli_console.c launcher/cli_cmdline.c launcher/cli_check.c launcher/cli_relay.c
  launcher/cli_dns_config.c launcher/cli_caddy_config.c launcher/cli_vsock_backend.c
  launcher/cli_relay_child.c
  launcher/cli_libvirt.c
  launcher/cli_attach.c)
target_link_libraries(ocvm PRIVATE ocvm_launcher)
