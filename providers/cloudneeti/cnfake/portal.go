package cnfake

// Changes made by hand in the Cloudneeti portal (not through the API), for tests
// of drift: the public API has no call for any of them.

// EditAccount applies fn to the account id of license lic (under the lock) and
// reports whether it exists.
func (s *Server) EditAccount(lic, id string, fn func(*Account)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.licenses[lic]
	if l == nil {
		return false
	}
	for _, a := range l.accounts {
		if a.ID == id {
			fn(a)
			return true
		}
	}
	return false
}

// RemoveAccount offboards an account as the portal does, and reports whether it
// existed.
func (s *Server) RemoveAccount(lic, id string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	l := s.licenses[lic]
	if l == nil {
		return false
	}
	for i, a := range l.accounts {
		if a.ID == id {
			l.accounts = append(l.accounts[:i], l.accounts[i+1:]...)
			return true
		}
	}
	return false
}
