# config/: struct vm_config, its strict loader and its defaults: the one model of a VM that
# policy/ and launcher/ share. Above vsock/ (it checks endpoints with vsock's parser).
add_library(ocvm_config STATIC config/config.c config/config_json.c)
target_link_libraries(ocvm_config PUBLIC ocvm_vsock ocvm_common)
