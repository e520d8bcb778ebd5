package edgefake

import (
	"net/http"
	"slices"
)

// deleteProjects is DELETE /v1/repository/project {projectId: [ids]} (seed
// edge-vsm-r3-api, "Delete Project"). Like Harbor, a user other than the system
// administrator deletes only its own projects (403), and unknown ids are ignored
// (inference: the seed lists no answer for them). The seed's response table for this
// call is a copy of the create call's; the fake answers 200.
func (s *Server) deleteProjects(w http.ResponseWriter, r *http.Request, u *User) {
	var req struct {
		ProjectID []int `json:"projectId"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	if len(req.ProjectID) == 0 {
		s.fail(w, http.StatusBadRequest, "projectId is required")
		return
	}
	for _, p := range s.projects {
		if slices.Contains(req.ProjectID, p.ID) && !isSysadmin(u) && p.Owner != u.ID {
			s.fail(w, http.StatusForbidden, "not allowed to delete project "+p.Name)
			return
		}
	}
	kept := s.projects[:0]
	for _, p := range s.projects {
		if !slices.Contains(req.ProjectID, p.ID) {
			kept = append(kept, p)
		}
	}
	s.projects = kept
	s.reply(w, http.StatusOK, nil)
}
