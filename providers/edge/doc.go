package edge

// Section documentation for `provision help sections`. Every section takes
// `endpoint`: an endpoint of kind "edge" whose auth is the system administrator
// (username admin, password). Passwords follow the platform's rule: 8-20
// characters with an upper-case letter, a lower-case letter and a digit.

const usersDoc = `edge_users: a platform user, registered (POST /v1/user) and approved by the system
administrator (PUT /v1/admin/user/{id}), or a sub-user of a general administrator.
  endpoint     edge endpoint (required)
  user         user name (default: the item name)
  password     secret (required; 8-20 chars, upper, lower, digit)
  phone        required
  real_name    required
  admin        true for a general administrator (may create a business)
  approve      approve the user (default true)
  parent       name of an edge_users item (a general administrator): creates a
               sub-user in its business namespace, logged in as that administrator
  outputs: user_id, status`

const businessesDoc = `edge_businesses: a business namespace, created by its general administrator and
audited by the system administrator; namespace "ns<id>" then exists in every cluster.
  endpoint     edge endpoint (required)
  name         business name (default: the item name)
  introduce, objective, scale   required
  admin        name of the edge_users item (admin: true) that creates it (required)
  approve      audit it as approved (default true); comment: audit comment
  outputs: business_id, namespace`

const clusterLabelsDoc = `edge_cluster_labels: a label on clusters (only the clusters missing it are sent).
  endpoint     edge endpoint (required)
  label        letters, digits, '-' and '.' (required)
  clusters     cluster names (required)
  outputs: label`

const nodeLabelsDoc = `edge_node_labels: a label on nodes of one cluster (only missing ones are sent).
  endpoint     edge endpoint (required)
  label        letters, digits, '-' and '.' (required)
  cluster      cluster name (required)
  nodes        node names (required)
  outputs: label`

const repoUsersDoc = `edge_repo_users: a user of the image repository (Harbor); 409 means it exists.
  endpoint     edge endpoint (required)
  user         default: the item name
  password     secret (required; 8-20 chars, upper, lower, digit)
  outputs: user`

const projectsDoc = `edge_repo_projects: a repository project, looked up by name before it is created.
  endpoint     edge endpoint (required)
  project      default: the item name
  public       true or false
  outputs: project_id`

const registriesDoc = `edge_registries: an external registry whose secret pulls images.
  endpoint        edge endpoint (required)
  repository_id   unique name (default: the item name)
  address, user   required
  password        secret (required)
  outputs: repository_id`

const appsDoc = `edge_apps: an application (POST /v1/app), looked up by name first
(GET /v1/app?appName=: the seed's list call is cut off, this lookup is an inference).
  endpoint       edge endpoint (required)
  name           appName (default: the item name)
  image          image with tag (required)
  version        x.y, e.g. 1.4 (required)
  deploy_type    deployment or daemonset (required)
  ports          exposed ports, 1-65535 (required)
  registry       name of an edge_registries item (sets repository_id, adds the dependency)
  repository_id  a registry id given directly
  business       name of an edge_businesses item to wait for
  owner          name of an edge_users item to create the app as (default: system administrator)
  outputs: app_id`
