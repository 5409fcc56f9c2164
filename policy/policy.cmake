# policy/: the static rules over a VM's config, the live audit, and the rendering of OpenClaw's own
# config (gateway_config.c). Above config/; never includes the launcher.
add_library(ocvm_policy STATIC policy/rules.c policy/audit.c policy/gateway_config.c)
target_link_libraries(ocvm_policy PUBLIC ocvm_config ocvm_netsetup ocvm_vsock ocvm_common)
