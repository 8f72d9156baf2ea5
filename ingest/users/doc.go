// Package users holds runnel's accounts: one users file for every
// protocol, hashed, never a clear password.
//
// Each account has a bcrypt hash (MQTT, HTTP Basic and Kafka SASL/PLAIN
// check passwords against it) and SCRAM-SHA-256 and SCRAM-SHA-512
// credentials (RFC 5802/7677: salt, iteration count, StoredKey, ServerKey)
// for Kafka's SASL/SCRAM, which never sees the password at all. The file
// is YAML, written by `runnel user add|del` (atomically: temporary file,
// fsync, rename, fsync of the directory; mode 0600):
//
//	# runnel users file: edit with `runnel user add|del|list`
//	users:
//	  - name: writer
//	    bcrypt: $2a$10$…
//	    scram-sha-256: {salt: BASE64, iterations: 4096, stored-key: BASE64, server-key: BASE64}
//	    scram-sha-512: {salt: BASE64, iterations: 4096, stored-key: BASE64, server-key: BASE64}
//
// A Store answers password checks (with a cache of the last matching
// password's SHA-256 per user, so that a reconnect storm does not pin the
// CPU in bcrypt) and SCRAM exchanges (Server).
package users
