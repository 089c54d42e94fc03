package ws

// OpenSessionGroups returns, for each distinct JoinOptions.Session of this
// process's open connections (signed-in ones only), the groups (rooms) it
// has connections in, so a caller that decides access elsewhere (a Django
// site's sessions and course enrolment) can re-check each.
func (h *Hub) OpenSessionGroups() map[string]map[string]bool {
	out := make(map[string]map[string]bool)
	for _, c := range h.snapshot() {
		if c.session == "" || c.isClosing() {
			continue
		}
		g := out[c.session]
		if g == nil {
			g = make(map[string]bool)
			out[c.session] = g
		}
		g[c.group] = true
	}
	return out
}
