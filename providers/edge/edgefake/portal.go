package edgefake

// Changes made by hand on the platform (its web console), for tests of drift.

// EditApp applies fn to the application named name (under the lock) and reports
// whether it exists.
func (s *Server) EditApp(name string, fn func(*App)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, a := range s.apps {
		if a.Name == name {
			fn(a)
			return true
		}
	}
	return false
}

// EditUser applies fn to the user named name (under the lock) and reports whether
// it exists.
func (s *Server) EditUser(name string, fn func(*User)) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if u := s.userByName(name); u != nil {
		fn(u)
		return true
	}
	return false
}
