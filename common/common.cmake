# common/: the bottom layer. Header-only helpers (cleanup, error, parse, clock) and the JSON
# reading helpers; it includes nothing of ocvm's above it.
add_library(ocvm_common STATIC
  common/json_pos.c
  common/json_reader.c
  common/log.c
)
target_link_libraries(ocvm_common PUBLIC PkgConfig::JANSSON)
