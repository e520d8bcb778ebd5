// Package edge provisions the edge platform "Video Security Monitoring R3" open API
// (endpoint kind "edge", e.g. https://edge.example.com:8995, API under /v1): users,
// business namespaces, cluster and node labels, image-repository users and projects,
// external registries and applications.
//
// # Endpoint
//
//	endpoints:
//	  edge:
//	    kind: edge
//	    url: https://edge.example.com:8995
//	    auth: {username: admin, password: ${env.EDGE_ADMIN_PASSWORD}}
//
// auth is the system administrator's (the built-in "admin"); auth.type is empty or
// "login". The client logs in with POST /v1/authorization {user, password}, sends the
// token in the Authorization header, refreshes it with PUT /v1/authorization while
// the login is younger than five hours (tokens last one hour) and logs in again
// otherwise or after a refused refresh; a 401 renews the token once and repeats the
// call. Flows that must act as another user (a general administrator creates its
// business, sub-users and the business's applications) log in with the credentials
// of that user's edge_users item; every user has its own token source (one per
// endpoint and user name), all share the endpoint's connection pool and limits.
//
// Answers may be plain JSON or a {code, msg, data} envelope (also with HTTP 200 and
// an error code in the body). Errors carry the documented meaning of the status
// (400/422 validation error, 401 login needed, 403 not allowed, 404 not found,
// 409 already exists, 415 wrong media type, 500 internal error) and the platform's
// msg. 5xx, 429 and lost connections are retryable; the others are not.
//
// # Sections
//
// Every item takes endpoint (required: an endpoint of kind edge). Every item looks
// its object up by its natural key before it creates it, so a rerun, a lost state
// file or an attempt in doubt adopts what exists instead of duplicating it; an
// existing object that contradicts the plan fails the task with a clear message
// (the API documents no update calls). Values that hold ${outputs.X.Y} are validated
// by the platform at run time instead of at load time.
//
// edge_users: a platform user.
//
//	user       string  user name; default: the item name
//	password   secret  required; 8-20 characters with at least one upper-case letter,
//	                   one lower-case letter and one digit
//	phone      string  required
//	real_name  string  required
//	admin      bool    true: general administrator (may create a business); default false
//	approve    bool    approve a pending user as the system administrator; default true
//	parent     string  name of an edge_users item that is a general administrator
//	                   (admin: true, no parent) on the same endpoint: the user is then a
//	                   sub-user created by that administrator (POST /v1/admin/user) in its
//	                   business namespace, and waits for the parent and its business items
//	outputs: user_id, user, status (0 pending, 1 approved, 2 not approved, 3 forbidden)
//
// Flow: GET /v1/admin/user (every page, as the system administrator) finds the user
// by name (the API has no name filter: concurrent tasks share listings, and "absent"
// is only ever read from a listing that started after the question); when absent, POST /v1/user (no token) or POST /v1/admin/user (as the
// parent); then PUT /v1/admin/user/{id} {status: 1} when approve is true and the user
// is pending. A user that was not approved or is forbidden on the platform is never
// flipped to approved: the task fails and says so. An existing user whose admin flag
// differs from the plan fails the task; phone and real name of existing users are not
// changed (no such call).
//
// edge_businesses: a business namespace, named after the item.
//
//	introduce  string  required
//	objective  string  required
//	scale      string  required
//	admin      string  required: name of the edge_users item (general administrator, no
//	                   parent, same endpoint) that logs in and creates the business; one
//	                   business per administrator
//	approve    bool    audit it as approved (system administrator); default true
//	comment    string  audit comment; default "approved by provision"
//	outputs: business_id, namespace ("ns" + business_id), status (0 pending, 1 approved)
//
// Flow: GET /v1/business?name= (system administrator) finds it; when absent the
// administrator creates it (POST /v1/business); PUT /v1/business/id/{id}
// {status: 1, comment} approves it, which creates namespace ns<id> in every cluster.
// A business of that name owned by another user, or disapproved on the platform,
// fails the task.
//
// edge_cluster_labels: a label on clusters.
//
//	label      string  required; letters, digits, '-' and '.' (at most 63)
//	clusters   list    required: cluster names, distinct
//	outputs: label, clusters (comma-separated)
//
// Flow: GET /v1/cluster/label/{cluster} for each cluster, then POST /v1/cluster/label
// {clusterName: [the clusters missing it], clusterLabel}. Labels are never removed.
//
// edge_node_labels: a label on nodes of one cluster.
//
//	label      string  required; letters, digits, '-' and '.' (at most 63)
//	cluster    string  required
//	nodes      list    required: node names, distinct
//	outputs: label, cluster
//
// Flow: GET /v1/node?clusterName=&nodeLabel= (every page) lists the nodes that carry
// it, then POST /v1/node/label {nodeName: [missing], nodeLabel, clusterName}.
//
// edge_repo_users: a user of the image repository (Harbor).
//
//	user       string  default: the item name
//	password   secret  required; the platform's password rule
//	outputs: user, existed (true when the create answered 409 and the user was adopted)
//
// Flow: POST /v1/repository/user; 409 means the name exists and is adopted (the API
// cannot read repository users back, so the password of an adopted user is unchecked).
//
// edge_repo_projects: a repository project.
//
//	project    string  default: the item name; lower-case letters and digits separated by
//	                   single '.', '_' or '-', at most 255 (Harbor's rule; inference)
//	public     bool    default false
//	outputs: project_id, project
//
// Flow: GET /v1/repository/project?projectName=, POST /v1/repository/project (201;
// 409 adopts), then the lookup again for the id. An existing project whose public
// flag differs fails the task.
//
// edge_registries: an external registry whose secret pulls images.
//
//	repository_id  string  the registry's unique name; default: the item name
//	business       string  name of an edge_businesses item whose administrator
//	                       creates and reads the record (default: the system
//	                       administrator); whether records are global or per business
//	                       is not in the seed (inference)
//	address        string  required, e.g. registry.example.com
//	user           string  required
//	password       secret  required (the external registry's: no platform rule)
//	outputs: repository_id
//
// Flow: GET /v1/repository/third/{id} (404: absent), POST /v1/repository/third
// (409 adopts; inference). An existing record whose address or user differ fails
// the task.
//
// edge_apps: an application.
//
//	app_name       string  appName; default: the item name
//	business       string  name of an edge_businesses item: the application waits for it
//	                       and is created by that business's administrator, in its
//	                       namespace; without it the system administrator creates it
//	image          string  required: image with its tag (repo:tag or repo@digest)
//	version        string  required: x.y, digits (e.g. "1.4": quote it in YAML)
//	deploy_type    string  required: deployment or daemonset
//	ports          list    required: exposed ports, 1-65535, distinct
//	repository_id  string  an external registry id whose secret pulls the image; when it
//	                       names an edge_registries item, that item's repository_id is sent
//	                       and the application waits for it
//	registry       string  the name of an edge_registries item: same as repository_id
//	                       naming it (the form of the first version of this section)
//	command        list    container command (strings)
//	args           list    container arguments (strings)
//	env            map     environment variables, name: value
//	description    string
//	outputs: app_id, app_name, namespace (when the platform says)
//
// Flow: GET /v1/app?appName= finds it, then POST /v1/app {appName, deployType, image,
// version, repositoryId, port, command, args, env: [{name, value}], description}.
// The seed's application section is cut off after "command": the lookup call and the
// fields after command (args, env, description) are inferences. The platform is not
// known to refuse a second application of the same name, so a create that failed in
// a way that may have taken effect is followed by the lookup, never by a blind
// repeat. An existing application with another image, version or deploy type fails
// the task. A platform that does not serve the lookup (404 or 405 on GET /v1/app
// even without a filter) gets creates only where no earlier attempt can have made
// the application; where one may have, the task fails in doubt (ErrNoAppLookup).
//
// # Destroy and drift
//
// Destroy uses the delete calls the seed documents, as the system administrator:
// users DELETE /v1/admin/user/{id} (the recorded id, checked against the user of that
// name); cluster labels DELETE /v1/cluster/label and node labels DELETE /v1/node/label
// (deleteDeploy left false), only from the clusters and nodes the task labelled
// (output labelled, checkpointed before each label call: labels found in place are
// not removed); repository projects DELETE /v1/repository/project {projectId} (the
// recorded id, checked against the project of that name); external registries DELETE
// /v1/repository/third {repositoryId}. Gone objects count as deleted. The seed has no
// delete call for businesses, repository users or applications: destroy leaves them,
// reports them (ErrCannotDelete) and says to remove them on the platform by hand.
// Adopted objects (found existing on the first look) are left alone unless destroy is
// asked to include them.
//
// Drift (plan --refresh) is read-only: users (gone, not approved, admin flag, phone,
// real name), businesses (gone, not approved), labels (each cluster or node missing
// it), projects (gone, public), registries (gone, address, user), applications (gone,
// image, version, deploy type). Repository users cannot be read back: their drift is
// reported as unknown. Passwords are never read back.
package edge

const usersDoc = `edge_users: a platform user, registered (POST /v1/user) and approved by the system
administrator (PUT /v1/admin/user/{id}), or a sub-user of a general administrator.
  endpoint     edge endpoint (required); its auth is the system administrator
  user         user name (default: the item name)
  password     secret (required): 8-20 characters with an upper-case letter, a
               lower-case letter and a digit
  phone        required
  real_name    required
  admin        true: general administrator, may create a business (default false)
  approve      approve the user when pending (default true); a user not approved or
               forbidden on the platform is never flipped: the task fails
  parent       name of an edge_users item (admin: true, no parent): the user is a
               sub-user created by that administrator in its business namespace
               (POST /v1/admin/user) and waits for it and its businesses
  outputs: user_id, user, status (0 pending, 1 approved, 2 not approved, 3 forbidden)
Looked up by name first (GET /v1/admin/user, every page): reruns adopt.
destroy: DELETE /v1/admin/user/{id}. drift: gone, not approved, admin, phone, real_name.`

const businessesDoc = `edge_businesses: a business namespace named after the item, created by its general
administrator and approved by the system administrator; namespace "ns<id>" then exists
in every cluster.
  endpoint     edge endpoint (required)
  introduce    required
  objective    required
  scale        required
  admin        name of the edge_users item (admin: true, no parent) that logs in and
               creates it (required; one business per administrator)
  approve      audit it as approved (default true)
  comment      audit comment (default "approved by provision")
  outputs: business_id, namespace, status
Looked up by name first (GET /v1/business?name=); one owned by another user fails.
destroy: not possible (the API has no delete call for businesses): remove it by hand.
drift: gone or no longer approved.`

const clusterLabelsDoc = `edge_cluster_labels: a label on clusters; only clusters missing it are labelled.
  endpoint     edge endpoint (required)
  label        letters, digits, '-' and '.', at most 63 (required)
  clusters     cluster names (required)
  outputs: label, clusters, labelled (the clusters this task labelled)
destroy: removes the label from the clusters this task labelled. drift: clusters missing it.`

const nodeLabelsDoc = `edge_node_labels: a label on nodes of one cluster; only nodes missing it are labelled.
  endpoint     edge endpoint (required)
  label        letters, digits, '-' and '.', at most 63 (required)
  cluster      cluster name (required)
  nodes        node names (required)
  outputs: label, cluster, labelled (the nodes this task labelled)
destroy: removes the label from the nodes this task labelled. drift: nodes missing it.
Example, one item per node of a list:
    - name: gateway-${row.node}
      foreach: {list: [{cluster: cluster-a, node: edge-a1}, {cluster: cluster-b, node: edge-b1}]}
      label: camera-gateway
      cluster: ${row.cluster}
      nodes: ["${row.node}"]`

const repoUsersDoc = `edge_repo_users: a user of the image repository (Harbor); 409 adopts an existing one.
  endpoint     edge endpoint (required)
  user         default: the item name
  password     secret (required): 8-20 characters with an upper-case letter, a
               lower-case letter and a digit
  outputs: user, existed
destroy: not possible (the API has no delete call for repository users): remove it in the
registry by hand. drift: unknown (repository users cannot be read back).`

const projectsDoc = `edge_repo_projects: a repository project, looked up by name before it is created.
  endpoint     edge endpoint (required)
  project      default: the item name; lower-case letters and digits separated by
               single '.', '_' or '-'
  public       default false; an existing project with another value fails
  outputs: project_id, project
destroy: DELETE /v1/repository/project {projectId}. drift: gone, public changed.`

const registriesDoc = `edge_registries: an external registry whose secret pulls images.
  endpoint        edge endpoint (required)
  repository_id   unique name (default: the item name)
  business        name of an edge_businesses item: its administrator creates and
                  reads the record, after it (default: the system administrator)
  address         registry address (required)
  user            required
  password        secret (required)
  outputs: repository_id
Read first (GET /v1/repository/third/{id}); another address or user fails.
Inference: the seed does not say whether a registry record is global or belongs to
its creator's business namespace. Without business it is created by the system
administrator and taken to be usable by every business; if the platform keeps
records per business, give the registry the business of the applications that use
it.
destroy: DELETE /v1/repository/third {repositoryId}. drift: gone, address or user changed.`

const appsDoc = `edge_apps: an application (POST /v1/app), looked up by name first (GET /v1/app?appName=:
the seed's list call is cut off, this lookup is an inference, and so is GET
/v1/app/{id}, which reads a checkpointed id).
If the platform does not serve the lookup (404 or 405 even without a filter; a 404
to the filtered list alone means no match), the inference fails safe: an
application that no earlier attempt can have created (not in doubt, no checkpointed
id) is created without a lookup; one that may exist is read by its checkpointed id
when GET /v1/app/{id} is served, and otherwise the task fails in doubt and is never
created blind (check the platform by hand).
  endpoint       edge endpoint (required)
  app_name       default: the item name
  business       name of an edge_businesses item: created by its administrator, in
                 its namespace, after it (default: by the system administrator)
  image          image with its tag (required)
  version        x.y, e.g. "1.4" (required)
  deploy_type    deployment or daemonset (required)
  ports          exposed ports, 1-65535 (required)
  repository_id  external registry id, or the name of an edge_registries item (then
                 its repository_id is sent and the app waits for it)
  registry       name of an edge_registries item (same as repository_id naming it)
  command, args  lists of strings
  env            map of environment variables
  description    text
  outputs: app_id, app_name, namespace (when known)
An existing application with another image, version or deploy type fails.
destroy: not possible (the seed documents no delete call for applications): remove it by hand.
drift: gone, image, version or deploy type changed.`
