// Package openvcloud provisions OpenvCloud cloud spaces through the cloud API
// (POST /restmachine/cloudapi/<actor>/<method>, parameters as a JSON body).
//
// Endpoints are of kind "openvcloud". All tasks of an endpoint share one Client and
// one credential:
//   - auth type itsyouonline (the default when client_id is set): a JWT from
//     ItsYou.online (client credentials, response_type=id_token), sent as
//     "Authorization: bearer <jwt>", renewed shortly before its exp claim and once
//     after a 401. The token URL is usually on another host and gets its own HTTP
//     client; the endpoint's TLS options apply to it only when it is on the
//     endpoint's host.
//   - auth type session (the default when only username is set): a session key from
//     users/authenticate, sent as ?authkey=<key>, renewed once after a 419 ("key not
//     valid or expired").
//
// A create is not idempotent on the server. With the _async form (the default) the
// task GUID is checkpointed the moment it is returned, and a resumed run keeps
// polling /restmachine/system/task/get instead of creating again; an attempt whose
// outcome is unknown looks the space up by account and name first, and an "already
// exists" answer (409, or a failed task saying so) adopts the existing space after
// checking its location. Spaces whose status is DELETED or DESTROYED are gone: never
// adopted, never waited for (a DELETED space still holds its name on the server, so
// the task then fails and says to restore it or delete it permanently).
//
// cloudspaces/create requires access (0-complexity/openvcloud actors.spec): without
// one in the plan the client sends the authenticated user, "<username>@itsyouonline"
// from the JWT's username claim (as gig-tech's ovc-sdk-go does) or the session's user.
//
// Polling system/task/get: 202, an empty body, null or [] mean still running; one
// 404 is taken for still running too (servers before 2.5.6 answer it right after the
// create), a second one means the task is unknown and the space is looked up by
// name; 400, 429 and 503 answers while polling are waited out (ovc-sdk-go does the
// same).
//
// Errors: the API answers the HTTP status and its message as a JSON string; 4xx
// answers are permanent and quote the message, 5xx, 429 and 503 are retryable, a
// poll that outlasts its limit is retryable (the rerun keeps polling the same task).
package openvcloud

// cloudSpacesDoc is the section's help text (`provision help sections`).
const cloudSpacesDoc = `openvcloud_cloudspaces: an OpenvCloud cloud space (cloudapi cloudspaces/create).
An item's task looks the space up by account and name whenever an earlier attempt may
have created it, adopts a space of that name (its location must match), and never
creates twice.

Endpoint (kind openvcloud):
  url                        the cloud API base URL, e.g. https://dc-1.demo.greenitglobe.com
  auth.type                  itsyouonline (default when client_id is set) or session
  auth.client_id             ItsYou.online application id (itsyouonline)
  auth.client_secret         its secret (itsyouonline; secret)
  auth.token_url             default https://itsyou.online/v1/oauth/access_token; an
                             absolute http(s) URL or a path on the endpoint
  auth.username, auth.password   session login (session; password is a secret)

Fields:
  endpoint                   name of an openvcloud endpoint (required)
  account_id                 integer > 0 (required): the account that owns the space
  location                   location code, e.g. be-gen-1 (required); cannot change later
  cloudspace_name            the cloud space's name, unique per account (default: the item
                             name; set it when two items name spaces in different accounts
                             alike); 1-128 characters, no leading or trailing spaces
  access                     user granted full access; the API requires one, so the
                             default is the authenticated user: <username>@itsyouonline
                             from the JWT's username claim (as gig-tech's ovc-sdk-go
                             does), or the session's username with session auth
  max_memory_capacity        GB, a number: -1 (unlimited, default) or >= 0
  max_vdisk_capacity         GB, integer: -1 (default) or >= 0
  max_cpu_capacity           cores, integer: -1 (default) or >= 0
  max_network_peer_transfer  GB, integer: -1 (default) or >= 0
  max_num_public_ip          integer: -1 (default) or >= 1 (the space's firewall needs one)
  external_network_id        integer > 0 (optional; default: the location's default)
  allowed_vm_sizes           list of size ids (integers > 0, no repeats; default: all)
  private_network            private IPv4 CIDR (10/8, 172.16/12, 192.168/16), /8 to /30,
                             written as its network address (default 192.168.103.0/24)
  type                       routeros (default) or vgw
  async                      true (default): create with _async and poll the task GUID
                             (checkpointed, so a resumed run keeps polling); false: the
                             synchronous call, a 409 "already exists" adopts the space
  wait_deployed              true: poll cloudspaces/get until the space is DEPLOYED
                             (default false: done when created, usually VIRTUAL)

Polls (async task, deployment) back off up to every 2 s and give up after 10 min with
a retryable error; a rerun resumes them. A task answer of 202, empty, null or [] is
"still running", and so is a single 404 right after the create (servers before
2.5.6); a task still unknown after that is settled by looking the space up by name.
400, 429 and 503 answers while polling are waited out.

Spaces in status DELETED or DESTROYED are gone: never adopted, never waited for
(wait_deployed fails at once). A DELETED space keeps its name on the server, so a new
one of that name cannot be created: the task fails and says to restore the deleted
space or delete it permanently.

Changes to a done item: name and the max_* limits (and allowed_vm_sizes) are applied
with cloudspaces/update; account_id and location cannot change (the task fails and says
so); private_network, type, external_network_id and access apply only at creation.
The task hash leaves out async and wait_deployed.

Outputs:
  cloudspace_id              the space's id
  status                     its status when the task finished (VIRTUAL, DEPLOYED, ...)
  task_guid                  the async create's task GUID, when there was one (else "")

Destroy: cloudspaces/delete {cloudspaceId, permanently: true} of the recorded space
(DESTROYED: a soft-deleted DELETED space would keep its name taken). A space already
DELETED, DESTROYED or unknown counts as gone; in doubt with no recorded id, the live
space of the item's account and name is deleted: the create's task first, when its GUID
was checkpointed; with none and no space of that name listed, an async create may still
be queued, so the record is kept (the task fails, saying when to run destroy again) until
10 minutes after the create was sent. The API refuses a space that still
holds virtual machines (409: delete them first) or is being deployed (retried). A space
that was adopted (it existed before the first create) is left unless destroy is asked
to include it.
Drift: cloudspaces/get, read-only: gone (DELETED, DESTROYED, unknown), or a changed
name, account, location or max_* limit.`
