# vsock/: the relay engine, the endpoints it opens, and the user-space vhost-user vsock backend.
# A library over common/ only: the launcher fills its option structs.
add_library(ocvm_vsock STATIC
  vsock/endpoint.c
  vsock/endpoint_socket.c
  vsock/ring_pool.c
  vsock/relay.c
  vsock/listen_rest.c
  vsock/virtqueue.c
  vsock/vsock_pkt.c
  vsock/vsock_conn.c
  vsock/vsock_table.c
  vsock/vsock_dev.c
  vsock/vhost_user.c
  vsock/connect_broker.c
  vsock/backend_sandbox.c
  vsock/backend_main.c
  vsock/relay_child_main.c
)
target_link_libraries(ocvm_vsock PUBLIC ocvm_common PkgConfig::SYSTEMD PkgConfig::SECCOMP)

if(OCVM_GUEST AND NOT OCVM_SANITIZE)
  # Runs from a busybox initramfs: no shared libraries there, and no libsystemd.
  add_executable(ocvm-guest vsock/guest_main.c vsock/guest_cmdline.c vsock/relay.c
    vsock/ring_pool.c vsock/endpoint.c vsock/endpoint_socket.c common/log.c)
  target_link_options(ocvm-guest PRIVATE -static)
endif()
