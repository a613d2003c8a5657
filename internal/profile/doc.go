// Package profile loads and validates a cluster profile: one cluster.yaml plus
// one <hostname>.yaml per node. Secrets are read from environment variables
// or files named in the profile, so a profile can be committed safely.
//
// The format, in brief (profiles/ holds a complete example):
//
//	cluster.yaml     name, domain, subnet, head_address (with prefix length),
//	                 dhcp {range: [first, last], dns, default_lease_time,
//	                 max_lease_time}, uplink, home_network?, wifi? {ssid,
//	                 passphrase, country, hidden?, security? (wpa2|wpa3)},
//	                 user {name, password_hash?,
//	                 ssh_authorized_keys?, password_login?}, base? {url, sha256},
//	                 kubernetes? (bool, default false)
//	<hostname>.yaml  hostname, role (head|worker), mac?, address? (workers;
//	                 needs mac), home_address? (IPv4 or DNS name; default
//	                 <hostname>.local)
//
// Every string in wifi, user and base may instead be {env: NAME} or
// {file: PATH} (relative to Options.FileBase, "~/" expanded, trailing
// newlines trimmed); adding optional: true makes an unset variable or missing
// file count as "not given" rather than an error. Unknown keys, wrong types
// and invalid values are all reported, each as FILE:LINE: FIELD: MESSAGE.
package profile
