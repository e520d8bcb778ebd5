// Package cloudneeti onboards cloud accounts into Cloudneeti (section
// cloudneeti_accounts): an AWS or Azure account is looked up by name and adopted, or
// onboarded; then it is put in the API application's scope, and optionally rescanned
// with the rescan job polled to completion.
//
// Endpoints are of kind "cloudneeti" (https://api.cloudneeti.com, or
// https://trialapi.cloudneeti.com). Every call carries the API-portal subscription
// key (Ocp-Apim-Subscription-Key). Tokens are issued by POST
// /authorize/license/{license}/token for the API application (client_id,
// client_secret): the license token for onboarding, licenseAccounts and the API-scope
// config call, and with ?accountId= an account token, which rescans and job status
// need (Cloudneeti_SaaS_Docs docs/userGuide/tokenAPI.md, initiateScanAPI.md). The
// client keeps one token per (license, account), fetched at first use and shared by
// all tasks of the endpoint. A token's lifetime is chosen per application and not
// announced: a token that is a JWT with an exp claim is renewed shortly before it
// (inference), and each is re-issued once after a 401 (a 401 about the subscription
// key is final). Both token answer shapes are accepted: {token, statusCode, message} (the
// seed) and {result: {token}, ...}.
//
// Every answer is the {result, statusCode, message} envelope; an envelope whose
// statusCode is not 200 is an error even inside an HTTP 200. 4xx are permanent and
// quote the API's message; 429 and 5xx are retryable.
//
// Onboarding is not idempotent on the server and its duplicate answer is not
// documented: the account is always looked up by name (licenseAccounts) before it is
// onboarded, account_id is checkpointed the instant the API returns it, and a 409
// (inferred: the fake answers 409 to a second account of the same name or cloud
// account) adopts the account of that name.
package cloudneeti

// accountsDoc is the section's help text (`provision help sections`).
const accountsDoc = `cloudneeti_accounts: a cloud account onboarded into Cloudneeti, in the API application's
scope, optionally rescanned. The account is looked up by name before it is onboarded
and adopted when it exists (its connector must match cloud), so reruns never onboard twice.

Endpoint (kind cloudneeti):
  url                  https://api.cloudneeti.com (or https://trialapi.cloudneeti.com)
  auth.api_key         API portal subscription key (secret; Ocp-Apim-Subscription-Key)
  auth.license_id      Cloudneeti license id (required)
  auth.client_id       API application id (required)
  auth.client_secret   API application secret (secret, required)

Tokens: the license token serves onboarding, the account list and the API scope;
rescans and job status use the account's own token (POST
/authorize/license/{license}/token?accountId={account}). The client fetches one token
per (license, account) when first needed, shares it, and renews it shortly before the
exp claim of a JWT-shaped token (an inference: the lifetime is not documented) and
once after a 401.
auth.account_id is not allowed (one endpoint-wide account token would be refused by
the license-token calls).

Fields:
  endpoint             name of a cloudneeti endpoint (required)
  account_name         the account's name in Cloudneeti (AccountName; default: the item
                       name); 1-100 characters, none of < > % & \, no surrounding spaces
  cloud                aws or azure (required)
  aws                  with cloud aws (required then, not allowed otherwise):
    account_id         12-digit AWS account id (quote it: "012345678901")
    role_name          IAM role Cloudneeti assumes (1-64 of letters, digits, +=,.@_-)
  azure                with cloud azure (required then, not allowed otherwise):
    domain_name        the directory's domain, e.g. contoso.onmicrosoft.com
    tenant_id          UUID
    application_client_id      UUID of the Azure AD application
    application_client_secret  its secret (secret: ${env.NAME} or ${file.PATH})
    subscription_id    UUID
  api_scope            true (default): add the account to the API application's scope
                       (PUT /onboarding/license/{license}/config), skipped when it is in it
  rescan               true: start a rescan and wait until its job ends Success (Failed
                       fails the task; a rerun starts a new rescan). Default false. The
                       account must be in the API scope (api_scope: true).

Jobs are polled with a back-off up to every 5 s for at most 30 min (then a retryable
error; a rerun resumes the checkpointed job); a 429 or 503 answer to a poll is waited
out. A done item whose spec changes is looked up again: onboarding details cannot be
updated through the API, scope and rescan are applied. The hash never depends on
application_client_secret's value.

Outputs:
  account_id           Cloudneeti account id
  job_id               onboarding job id ("" when the account was adopted)
  rescan_job_id        the rescan's job id ("" without rescan)
  rescan_status        the rescan job's final status (Success), "" without rescan

Destroy: the public API (Cloudneeti_SaaS_Docs) has no call that offboards an account or
removes it from the API scope, so destroy sends nothing and reports the account as left
(remove it in the Cloudneeti portal by hand, then forget the task).
Drift: licenseAccounts, read-only: the account gone, renamed, of another connector, or
out of the API scope that api_scope asks for. Onboarding details cannot be read back.`
