package channel

// ValidNodeName reports whether s may name a cluster node: 1 to 32 characters of [a-z0-9-].
// A node name starts every Faye client id the node issues and is a token of NATS subjects, so
// the configuration accepts only such names and the Faye door trusts no other client id prefix.
func ValidNodeName(s string) bool {
	if len(s) == 0 || len(s) > 32 {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}
