package edge

import (
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"

	"provision/plan"
	"provision/providers"
	"provision/providers/rest"
)

var _ providers.Remover = (*Kind[UserSpec, *UserSpec])(nil)

// deleter is what a spec does when it can be deleted: remove the object its task
// made, from the task's record (d.Prior) and spec.
type deleter interface {
	delete(ctx context.Context, e *env, d *providers.Deletion) error
}

// Delete implements providers.Remover. Sections whose objects the seed
// (edge-vsm-r3-api.txt) documents no delete call for (businesses, repository users,
// applications) answer an error wrapping ErrCannotDelete and send nothing.
func (k *Kind[T, P]) Delete(ctx context.Context, b *providers.Build, d *providers.Deletion) error {
	sp, e, err := k.recorded(b, d)
	if err != nil {
		return err
	}
	dl, ok := any(sp).(deleter)
	if !ok {
		return k.cannotDelete(d)
	}
	return dl.delete(ctx, e, d)
}

// recorded is the task's spec and env: the current plan's (with secrets) when it
// still lists the task, else the spec the state recorded.
func (k *Kind[T, P]) recorded(b *providers.Build, d *providers.Deletion) (P, *env, error) {
	if d.Planned != nil {
		if a, ok := d.Planned.Action.(*action[T, P]); ok {
			return a.spec, a.env, nil
		}
	}
	sp := P(new(T))
	if d.Info != nil {
		if err := providers.DecodeSpecJSON(d.Info.Spec, sp); err != nil {
			return nil, nil, err
		}
	}
	name := sp.endpointName()
	if name == "" {
		name = d.Task.Endpoint
	}
	client, err := providers.EndpointClient(b, plan.Pos{}, name, EndpointKind, clientMaker(b))
	if err != nil {
		return nil, nil, err
	}
	return sp, envOf(b, b.Plan.Endpoints[name], client), nil
}

func (k *Kind[T, P]) cannotDelete(d *providers.Deletion) error {
	switch k.section {
	case BusinessesSection:
		what := "business " + d.Task.ID
		if id := d.PriorValue("business_id"); id != "" {
			what += " (id " + id + ", namespace ns" + id + ")"
		}
		return providers.CannotDelete(what, "the platform's API documents no delete call for businesses (edge-vsm-r3-api: create, list, get and audit only); remove it on the platform by hand")
	case RepoUsersSection:
		return providers.CannotDelete("repository user "+d.Task.ID, "the platform's API documents no delete call for repository users (edge-vsm-r3-api: create and password change only); remove it in the registry (Harbor) by hand")
	case AppsSection:
		what := "application " + d.Task.ID
		if id := d.PriorValue("app_id"); id != "" {
			what += " (id " + id + ")"
		}
		return providers.CannotDelete(what, "the platform's API documents no delete call for applications (edge-vsm-r3-api: create only); remove it on the platform by hand")
	}
	return providers.CannotDelete(d.Task.Kind+" "+d.Task.ID, "this section has no delete call")
}

// delete removes the user the task recorded (DELETE /v1/admin/user/{id} as the
// system administrator). The user is identified by its recorded id and name
// together; in doubt with no id, the user of the item's name is the task's own.
func (s *UserSpec) delete(ctx context.Context, e *env, d *providers.Deletion) error {
	name := s.User
	if name == "" {
		name = d.PriorValue("user")
	}
	if name == "" {
		name = d.Task.ID
	}
	id, _ := strconv.Atoi(d.PriorValue("user_id"))
	if id == 0 && !d.InDoubt {
		d.Log.Info().Msg("no user was recorded for this task: nothing to delete")
		return nil
	}
	if id == 0 && specUnknown(d) && d.PriorValue("user") == "" {
		return errUnidentified(d, "user")
	}
	admin := e.sysadmin()
	u, _, err := e.client.users.fresh(ctx, admin, name)
	if err != nil {
		return err
	}
	switch {
	case u == nil:
		d.Log.Debug().Str("user", name).Msg("user gone already")
		return nil
	case id != 0 && u.ID != id:
		d.Log.Warn().Str("user", name).Int("recorded_id", id).Int("id", u.ID).Msg("a user of this name exists with another id: it is not this task's, left alone")
		return nil
	}
	if err := admin.DeleteUser(ctx, u.ID); err != nil && providers.StatusOf(err) != http.StatusNotFound {
		return fmt.Errorf("delete user %s (id %d): %w", name, u.ID, err)
	}
	e.client.users.forget(name)
	d.Log.Debug().Str("user", name).Int("id", u.ID).Msg("user deleted")
	return nil
}

// recordedList is a comma-separated output, or nil when absent.
func recordedList(d *providers.Deletion, key string) ([]string, bool) {
	v, ok := d.Prior[key]
	if !ok {
		return nil, false
	}
	if v.Value == "" {
		return nil, true
	}
	return strings.Split(v.Value, ","), true
}

// delete removes the label from the clusters this task labelled (output labelled,
// checkpointed before each label call), or from every cluster of the item when the
// record predates that output. Clusters that no longer carry it are skipped.
func (s *ClusterLabelSpec) delete(ctx context.Context, e *env, d *providers.Deletion) error {
	clusters, ok := recordedList(d, "labelled")
	if !ok {
		clusters = s.Clusters
	}
	k := e.sysadmin()
	var carry []string
	for _, cl := range clusters {
		labels, err := k.ClusterLabels(ctx, cl)
		if providers.StatusOf(err) == http.StatusNotFound {
			continue // the cluster is gone
		}
		if err != nil {
			return err
		}
		if contains(labels, s.Label) {
			carry = append(carry, cl)
		}
	}
	if len(carry) == 0 {
		d.Log.Debug().Msg("no cluster carries the label: nothing to delete")
		return nil
	}
	if err := k.UnlabelClusters(ctx, s.Label, carry); err != nil {
		return fmt.Errorf("remove label %s from clusters %s: %w", s.Label, strings.Join(carry, ", "), err)
	}
	d.Log.Debug().Str("label", s.Label).Strs("clusters", carry).Msg("cluster label removed")
	return nil
}

// delete removes the label from the nodes this task labelled (as for clusters).
func (s *NodeLabelSpec) delete(ctx context.Context, e *env, d *providers.Deletion) error {
	nodes, ok := recordedList(d, "labelled")
	if !ok {
		nodes = s.Nodes
	}
	k := e.sysadmin()
	labelled, err := k.Nodes(ctx, s.Cluster, s.Label)
	if providers.StatusOf(err) == http.StatusNotFound {
		return nil
	}
	if err != nil {
		return err
	}
	have := map[string]bool{}
	for _, n := range labelled {
		if n.Cluster == "" || n.Cluster == s.Cluster {
			have[n.Name] = true
		}
	}
	var carry []string
	for _, n := range nodes {
		if have[n] {
			carry = append(carry, n)
		}
	}
	if len(carry) == 0 {
		d.Log.Debug().Msg("no node carries the label: nothing to delete")
		return nil
	}
	if err := k.UnlabelNodes(ctx, s.Cluster, s.Label, carry); err != nil {
		return fmt.Errorf("remove label %s from nodes %s of %s: %w", s.Label, strings.Join(carry, ", "), s.Cluster, err)
	}
	d.Log.Debug().Str("label", s.Label).Strs("nodes", carry).Msg("node label removed")
	return nil
}

// delete removes the repository project (DELETE /v1/repository/project
// {projectId: [id]}), identified by its recorded id and name together.
func (s *ProjectSpec) delete(ctx context.Context, e *env, d *providers.Deletion) error {
	name := s.Project
	if name == "" {
		name = d.PriorValue("project")
	}
	if name == "" {
		name = d.Task.ID
	}
	id, _ := strconv.Atoi(d.PriorValue("project_id"))
	if id == 0 && !d.InDoubt {
		d.Log.Info().Msg("no repository project was recorded for this task: nothing to delete")
		return nil
	}
	if id == 0 && specUnknown(d) && d.PriorValue("project") == "" {
		return errUnidentified(d, "repository project")
	}
	k := e.sysadmin()
	p, err := k.FindProject(ctx, name)
	if err != nil {
		return err
	}
	switch {
	case p == nil:
		d.Log.Debug().Str("project", name).Msg("repository project gone already")
		return nil
	case id != 0 && p.ID != id:
		d.Log.Warn().Str("project", name).Int("recorded_id", id).Int("id", p.ID).Msg("a project of this name exists with another id: it is not this task's, left alone")
		return nil
	}
	if err := k.DeleteProjects(ctx, p.ID); err != nil && providers.StatusOf(err) != http.StatusNotFound {
		return fmt.Errorf("delete repository project %s (id %d): %w", name, p.ID, err)
	}
	d.Log.Debug().Str("project", name).Int("id", p.ID).Msg("repository project deleted")
	return nil
}

// delete removes the external registry record (DELETE /v1/repository/third
// {repositoryId: [id]}); the seed says it does not affect running deployments.
func (s *RegistrySpec) delete(ctx context.Context, e *env, d *providers.Deletion) error {
	id := d.PriorValue("repository_id")
	if id == "" && d.InDoubt {
		if specUnknown(d) {
			return errUnidentified(d, "external registry")
		}
		id = s.RepositoryID
	}
	if id == "" {
		d.Log.Info().Msg("no external registry was recorded for this task: nothing to delete")
		return nil
	}
	k := e.sysadmin()
	r, err := k.GetRegistry(ctx, id)
	if err != nil {
		return err
	}
	if r == nil {
		d.Log.Debug().Str("registry", id).Msg("external registry gone already")
		return nil
	}
	if err := k.DeleteRegistries(ctx, id); err != nil && providers.StatusOf(err) != http.StatusNotFound {
		return fmt.Errorf("delete external registry %s: %w", id, err)
	}
	d.Log.Debug().Str("registry", id).Msg("external registry deleted")
	return nil
}

// DeleteUser deletes a user (DELETE /v1/admin/user/{id}; general administrators in
// their business, the system administrator everywhere).
func (k *Conn) DeleteUser(ctx context.Context, id int) error {
	_, _, err := k.do(ctx, &rest.Request{Method: http.MethodDelete, Path: "/v1/admin/user/" + strconv.Itoa(id), Idempotent: true,
		Op: "delete user " + strconv.Itoa(id)})
	return err
}

// UnlabelClusters removes label from clusters (DELETE /v1/cluster/label
// {clusterName, clusterLabel}); repeatable.
func (k *Conn) UnlabelClusters(ctx context.Context, label string, clusters []string) error {
	_, _, err := k.do(ctx, &rest.Request{Method: http.MethodDelete, Path: "/v1/cluster/label", Idempotent: true, Op: "remove cluster label " + label,
		JSON: map[string]any{"clusterName": clusters, "clusterLabel": label}})
	return err
}

// UnlabelNodes removes label from nodes of one cluster (DELETE /v1/node/label
// {nodeName, nodeLabel, clusterName}; deleteDeploy is left false, so deployments on
// those nodes stay); repeatable.
func (k *Conn) UnlabelNodes(ctx context.Context, cluster, label string, nodes []string) error {
	_, _, err := k.do(ctx, &rest.Request{Method: http.MethodDelete, Path: "/v1/node/label", Idempotent: true, Op: "remove node label " + label,
		JSON: map[string]any{"nodeName": nodes, "nodeLabel": label, "clusterName": cluster}})
	return err
}

// DeleteProjects deletes repository projects by id (DELETE /v1/repository/project
// {projectId: [...]}).
func (k *Conn) DeleteProjects(ctx context.Context, ids ...int) error {
	_, _, err := k.do(ctx, &rest.Request{Method: http.MethodDelete, Path: "/v1/repository/project", Idempotent: true, Op: "delete repository projects",
		JSON: map[string]any{"projectId": ids}})
	return err
}

// DeleteRegistries deletes external registry records by id (DELETE
// /v1/repository/third {repositoryId: [...]}).
func (k *Conn) DeleteRegistries(ctx context.Context, ids ...string) error {
	_, _, err := k.do(ctx, &rest.Request{Method: http.MethodDelete, Path: "/v1/repository/third", Idempotent: true, Op: "delete external registries",
		JSON: map[string]any{"repositoryId": ids}})
	return err
}

// forget drops a user this process deleted from the directory.
func (d *userDirectory) forget(name string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	delete(d.byName, name)
}

// joinNew adds names to a comma-separated list, each once.
func joinNew(list string, names []string) string {
	var out []string
	seen := map[string]bool{}
	if list != "" {
		for _, n := range strings.Split(list, ",") {
			if !seen[n] {
				seen[n] = true
				out = append(out, n)
			}
		}
	}
	for _, n := range names {
		if !seen[n] {
			seen[n] = true
			out = append(out, n)
		}
	}
	return strings.Join(out, ",")
}

// specUnknown reports that neither the plan nor the state gives the task's spec (a
// task that never finished, no longer in the plan): its natural key is unknown.
func specUnknown(d *providers.Deletion) bool {
	return d.Planned == nil && (d.Info == nil || len(d.Info.Spec) == 0)
}

// errUnidentified is the answer for an in-doubt task whose object cannot be told
// apart from others: nothing is deleted.
func errUnidentified(d *providers.Deletion, what string) error {
	return fmt.Errorf("%s: an interrupted create may have made a %s, but neither the plan nor the state tells its name: check the platform by hand (nothing deleted)", d.Task.ID, what)
}
