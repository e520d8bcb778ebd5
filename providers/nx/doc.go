// Package nx provisions Nx Witness systems into Nx Cloud. Endpoints are of kind
// "nx-cloud" (the cloud DB, e.g. https://nxvms.com); servers are reached at the URL
// each item gives.
//
// # Endpoint (kind nx-cloud)
//
//	endpoints:
//	  nxcloud:
//	    kind: nx-cloud
//	    url: https://nxvms.com
//	    auth: {username: ops@example.com, password: ${env.NX_CLOUD_PASSWORD}}
//
// auth.type is empty or oauth2-password: POST /cdb/oauth2/token with a JSON body
// {grant_type: password, response_type: token, client_id: 3rdParty, scope: "<url>
// cloudSystemId=*", username, password} (auth.scope overrides the scope). One token
// per endpoint is shared by every task, renewed before it expires (with the refresh
// token, else the password) and after a 401.
//
// # Section nx_systems
//
// One item connects one Nx server to Nx Cloud: it binds a cloud system, then sets the
// server up with the cloud credentials (a factory-new server) or binds it (a set-up
// server), and shares the system with users.
//
//	cloud           string, required. Name of an nx-cloud endpoint.
//	url             string, required. The server's base URL, http(s) with a host, no
//	                credentials, query or fragment, e.g. https://10.0.0.5:7001. Unique
//	                in the plan (one server joins one cloud system).
//	admin           {username (default admin), password (secret, required)}: the
//	                server's local admin. Logging in tries admin.password, then
//	                local_password (set by an earlier setup), then, unless mode is
//	                existing, the factory default admin/admin.
//	mode            new | existing | auto (default auto). new: POST
//	                /rest/v3/system/setup (the server must be factory-new); existing:
//	                POST /rest/v3/system/cloud/bind (the server must be set up); auto:
//	                GET /rest/v3/system/info decides (localId absent or the nil UUID:
//	                setup, else cloud bind).
//	system_name     string, default the item name. The cloud system's name; unique per
//	                cloud account and organization in the plan (an interrupted bind is
//	                found again by its name). No control characters.
//	customization   string, default "default" (Nx Witness).
//	organization    string, optional. Organization id: the cloud system is created
//	                with POST /partners/api/v3/cloud_systems/ and looked up in the
//	                organization's paged list (every page, following next); the
//	                setup's cloud part and the cloud bind carry organizationId where
//	                the server takes it (VMS 6.1 and later, read from system/info;
//	                6.0 servers have no such field and are not sent it).
//	local_password  secret, optional. New local admin password sent with a setup
//	                (local.password); at least 8 characters.
//	settings        mapping of system settings (boolean, string or number values),
//	                sent with a setup or PATCHed (/rest/v3/system/settings) after a
//	                cloud bind, e.g. {autoDiscoveryEnabled: true, statisticsAllowed: false}.
//	tls             {ca_file (PEM, relative to the plan), fingerprint_sha256 (of the
//	                server's certificate), insecure, server_name} for the server's
//	                usually self-signed certificate; insecure only when set, never
//	                with ca_file or fingerprint_sha256.
//	users           list of shares, each {email (required, an address), role
//	                (required: none, disabled, custom, liveViewer, viewer,
//	                advancedViewer, localAdmin, cloudAdmin, maintenance, owner,
//	                system), user_role_id, custom_permissions (required with role
//	                custom), enabled (default true), vms_user_id}. Each becomes a task
//	                "<item>/share/<email>" that waits for the system task; an email
//	                appears once per item.
//
// Outputs: cloud_system_id; auth_key (secret: stored encrypted with the state key,
// not stored without one); owner (the account that owns the cloud system);
// server_local_id; mode_used (new, existing, or already-bound).
//
// How a run goes, and why it leaves no orphan and no duplicate. The server is read
// first: bound to this task's cloud system, the task is done; bound to another
// system of this account with this name (a lost state file), that system is adopted;
// bound to anything else, the task fails ("refusing to rebind") before anything is
// created. A cloud bind creates a new cloud system on every call, so its id and auth
// key are checkpointed the moment it answers, and reused on the next attempt while
// the system is still unactivated. A system whose auth key was lost (no state key)
// is removed before a new bind. After an attempt whose outcome is unknown (in
// doubt) the account's (or organization's) unactivated systems of this name are
// looked up first: one is removed (its key cannot be read back) and bound again;
// more than one fails the task with their ids. A retry after a definite refusal (a
// 429, a 4xx) is not in doubt and sends no lookup. A system the cloud answers 403 for
// (removed: "inaccessible or removed") counts as gone: a resume binds a new one, and
// removing it again succeeds. A 2xx answer whose resultCode is not ok is an error
// with that code. A setup refused because the server is set up already is followed
// by a fresh read of the server. A changed spec on a bound system PATCHes the
// settings; a changed system_name or customization fails with "cannot rename a
// bound cloud system" (rename it in Nx Cloud by hand).
//
// # Section nx_shares
//
// One item shares one cloud system with one cloud account, for "users x systems"
// plans:
//
//	cloud             string, required. Name of an nx-cloud endpoint.
//	system            string: the name of an nx_systems item; the share waits for it
//	                  and uses its cloud_system_id output. Or:
//	cloud_system_id   string: a cloud system id (UUID). Exactly one of the two.
//	email, role, user_role_id, custom_permissions, enabled, vms_user_id
//	                  as in nx_systems users. One share per system and email in a plan.
//
// Outputs: email, access_role, cloud_system_id (the system shared, for destroy).
//
// POST /cdb/systems/{id}/users (or /cdb/v0/systems/{id}/users) is an upsert, so a
// share is retried freely; the share list is looked at first and a share that grants
// what the plan asks is left alone (a rerun sends no change). The ids the cloud
// fills in and echoes back (userRoleId, vmsUserId, roleIds) count only when the plan
// names them; custom_permissions only with role custom. Role none removes a share.
//
// Requests: a system's share list is read at most once per run, shared by its share
// tasks and updated as they write (read again only after a write whose outcome is
// unknown), and not at all for a system bound in this run (only its owner has
// access). A factory-new store with k shares costs bind, login, info, setup and k
// share writes, plus one token per run; a rerun of a done plan sends nothing.
//
// # Destroy and drift
//
// Destroy of a system task: when the plan still lists the item (so its admin
// password is known), the server is read and, when bound to the task's cloud
// system, told to disconnect (POST /rest/v3/system/cloud/unbind {password}, the
// local_password, else admin.password); then the cloud system is removed (DELETE
// /cdb/systems/{id}; 404 or 403, the answer for a removed system, count as gone).
// When the plan no longer lists the item, the server is not told (its password is
// not in the state) and destroy says so; the cloud removes the system all the same.
// A task in doubt with no recorded id removes the one unactivated system of its
// name, and refuses when there are several. What destroy cannot undo: a server's
// setup (its name, local admin password and settings stay as the run left them).
// Destroy of a share: accessRole none through the same upsert; the owner's access is
// never removed; a share of a removed system is gone with it. Objects adopted (found
// existing on the first look) are left alone unless destroy is asked to include them.
//
// Drift (plan --refresh) reads, never writes: the cloud system (gone, system_name,
// customization, activated), the server (bound to it), the settings the item sets,
// and each share (gone, role, enabled, custom_permissions). userRoleId, vmsUserId and
// the VMS's roleIds are filled by the cloud and the server and are not compared; the
// auth key is never read back.
package nx

const systemsDoc = `nx_systems: connect an Nx Witness server to Nx Cloud and share it with users.
  cloud           nx-cloud endpoint name (required)
  url             the server's base URL, e.g. https://10.0.0.5:7001 (required, unique in the plan)
  admin           {username (default admin), password (secret, required)}: the server's local
                  admin; login also tries local_password and, unless mode is existing, admin/admin
  mode            new (setup), existing (cloud bind) or auto (default: the server's info decides)
  system_name     cloud system name (default: the item name; unique per cloud account)
  customization   default "default"
  organization    organization id: bind through /partners/api/v3/cloud_systems/; organizationId
                  goes to servers of version 6.1 and later
  local_password  secret: new local admin password sent with a setup (8 characters at least)
  settings        system settings (boolean, string or number values), sent with a setup or
                  PATCHed after a cloud bind, e.g. {autoDiscoveryEnabled: true}
  tls             {ca_file, fingerprint_sha256, insecure, server_name} for the server's
                  certificate; insecure only when set here
  users           shares, each {email, role, user_role_id, custom_permissions, enabled (default
                  true), vms_user_id}; each becomes a task "<name>/share/<email>"; role is one of
                  none, disabled, custom, liveViewer, viewer, advancedViewer, localAdmin,
                  cloudAdmin, maintenance, owner, system
  outputs: cloud_system_id, auth_key (secret), owner, server_local_id, mode_used
A server bound to this item's cloud system counts as done; bound to another one, the task
fails and nothing is rebound. A bind's id and key are checkpointed at once; an interrupted
bind is found by name (every page of an organization's list), removed and bound again, so
no orphan system is left; a removed system (403) is bound again. A changed system_name
cannot be applied to a bound system (rename it in Nx Cloud). A share list is read once per
system and run; a new store with k shares costs 4 + k requests.
destroy: tells the server to disconnect (when the plan still gives its admin password; else
it says the server was not told) and removes the cloud system; a server's setup is not undone.
drift: cloud system gone or renamed, server not bound to it, settings changed.`

const sharesDoc = `nx_shares: share a cloud system with a cloud account (an upsert: rerunning sends no change;
ids the cloud echoes back are no drift unless the plan names them).
  cloud             nx-cloud endpoint name (required)
  system            name of an nx_systems item (the share waits for it and uses its
                    cloud_system_id output), or
  cloud_system_id   a cloud system id (UUID); exactly one of system and cloud_system_id
  email             the account's email address (required)
  role              none (removes the share), disabled, custom, liveViewer, viewer,
                    advancedViewer, localAdmin, cloudAdmin, maintenance, owner, system
  user_role_id, custom_permissions (required with role custom), enabled (default true), vms_user_id
  outputs: email, access_role, cloud_system_id
Example, an auditor on every store of a CSV:
    - name: audit-${row.store}
      foreach: {csv: stores.csv}
      system: store-${row.store}
      email: audit@example.com
      role: viewer
destroy: removes the share (accessRole none); never the owner's access.
drift: share gone, role, enabled or custom_permissions changed (userRoleId and vmsUserId
are the VMS's own and not compared).`
