# netsetup/: bridge, TAP and nft table of one VM, from a struct netsetup_plan. A library over
# common/ only: the launcher fills the plan from the config.
add_library(ocvm_netsetup STATIC
  netsetup/cidr.c
  netsetup/dns_config.c
  netsetup/firewall.c
  netsetup/link.c
  netsetup/netsetup.c
  netsetup/ruleset_diff.c
)
target_link_libraries(ocvm_netsetup PUBLIC ocvm_common PkgConfig::NL PkgConfig::NFT)
