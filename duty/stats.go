package duty

// CountByOrg returns the number of managers on duty per organisation, for organisations that
// have any.
func (r *Registry) CountByOrg() map[string]int {
	r.mu.RLock()
	defer r.mu.RUnlock()
	out := make(map[string]int, len(r.byOrg))
	for org, managers := range r.byOrg {
		out[org] = len(managers)
	}
	return out
}
