//! Tamper evidence over HTTP: signed checkpoints, inclusion and consistency
//! proofs, the verifier key, and the background task that signs tree heads.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use serde_json::json;

use auditlog_core::checkpoint::Checkpoint;
use auditlog_core::record::AccountId;
use auditlog_store::TreeHead;

use crate::auth::{Caller, Needed};
use crate::error::{ApiError, ApiResult};
use crate::request::{FromQuery, Params, each_known, record_or_404};
use crate::state::AppState;

/// How often tree heads are looked at: twice a second, so an account that
/// receives events gets a checkpoint at least once a second.
const SIGN_INTERVAL: Duration = Duration::from_millis(500);

/// Signs and stores a checkpoint for every account whose log grew: the
/// background signer's round.
pub async fn sign_pending(state: &AppState) -> Result<usize, ApiError> {
    let heads = state.store.unsigned_heads().await?;
    let n = heads.len();
    for (account, head) in heads {
        sign_head(state, &account, head).await?;
    }
    Ok(n)
}

/// Signs and stores a checkpoint of `account` if its log grew since the
/// last: what a request may do, for its own account only (signing every
/// account's head on each request let any reader make the server sign and
/// write for all tenants; the background signer keeps its own cadence).
pub async fn sign_account(state: &AppState, account: &AccountId) -> Result<bool, ApiError> {
    match state.store.unsigned_head(account).await? {
        Some(head) => {
            sign_head(state, account, head).await?;
            Ok(true)
        }
        None => Ok(false),
    }
}

async fn sign_head(state: &AppState, account: &AccountId, head: TreeHead) -> Result<(), ApiError> {
    let checkpoint = Checkpoint::new(state.origin_of(account.as_str()), head.size, head.root)
        .map_err(|e| ApiError::Internal(format!("checkpoint for {account}: {e}")))?;
    let note = state
        .signer
        .sign_checkpoint(&checkpoint)
        .map_err(|e| ApiError::Internal(format!("sign checkpoint: {e}")))?;
    state.store.put_checkpoint(account, head.size, note).await?;
    Ok(())
}

/// Runs [`sign_pending`] forever. The heads come from committed state only,
/// so a checkpoint never covers an event that is not durable.
pub async fn run_checkpointer(state: AppState) {
    let mut tick = tokio::time::interval(SIGN_INTERVAL);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tick.tick().await;
        // Instances sharing one database elect one background signer.
        match state.store.leads_checkpoints().await {
            Ok(true) => {}
            Ok(false) => continue,
            Err(e) => {
                tracing::warn!(error = ?e, "checkpoint signer election failed; retrying");
                continue;
            }
        }
        match sign_pending(&state).await {
            Ok(n) if n > 0 => {
                metrics::counter!("auditlog_checkpoints_signed_total").increment(n as u64)
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = ?e, "checkpoint signing failed; retrying"),
        }
    }
}

/// `GET /v1/public-key`: the verifier key in signed-note format.
#[utoipa::path(get, path = "/v1/public-key", security(()), responses((status = 200, description = "Verifier key in signed-note vkey format (text/plain)")))]
pub async fn public_key(State(st): State<AppState>) -> Response {
    (
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        format!("{}\n", st.signer.verifier_key()),
    )
        .into_response()
}

/// `GET /v1/accounts/{account}/checkpoint`: the latest signed checkpoint.
///
/// Signs one of this account now if its log grew since the last, so a
/// client that just ingested gets a checkpoint covering its events; no
/// other account's head is signed by the request.
#[utoipa::path(get, path = "/v1/accounts/{account}/checkpoint", params(("account" = String, Path, description = "Account id")), responses((status = 200, description = "C2SP tlog-checkpoint signed as a C2SP signed-note (text/plain)")))]
pub async fn checkpoint(
    State(st): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
) -> ApiResult<Response> {
    let account = caller.authorize(&account, Needed::Read)?;
    sign_account(&st, &account).await?;
    match st.store.latest_checkpoint(&account).await? {
        Some(note) => {
            Ok(([(header::CONTENT_TYPE, "text/plain; charset=utf-8")], note).into_response())
        }
        None => Err(ApiError::NotFound(
            "this account has no checkpoint yet: it has no events".into(),
        )),
    }
}

/// Two sizes a proof needs, both required, named `names` in the URL.
fn two_sizes(pairs: Vec<(String, String)>, names: [&str; 2]) -> ApiResult<[u64; 2]> {
    let mut out = [None, None];
    each_known(pairs, &names, |i, k, v| {
        let n = v.parse::<u64>().map_err(|_| {
            ApiError::BadRequest(format!(
                "invalid `{k}`: `{v}` is not a non-negative integer"
            ))
        })?;
        out[i] = Some(n);
        Ok(())
    })?;
    match out {
        [Some(a), Some(b)] => Ok([a, b]),
        _ => Err(ApiError::BadRequest(format!(
            "`{}` and `{}` are both required",
            names[0], names[1]
        ))),
    }
}

/// `?seq=N&size=S` of an inclusion proof.
pub(crate) struct InclusionQuery {
    seq: u64,
    size: u64,
}

impl FromQuery for InclusionQuery {
    fn from_pairs(pairs: Vec<(String, String)>) -> ApiResult<InclusionQuery> {
        let [seq, size] = two_sizes(pairs, ["seq", "size"])?;
        Ok(InclusionQuery { seq, size })
    }
}

/// `?from=S1&to=S2` of a consistency proof.
pub(crate) struct ConsistencyQuery {
    from: u64,
    to: u64,
}

impl FromQuery for ConsistencyQuery {
    fn from_pairs(pairs: Vec<(String, String)>) -> ApiResult<ConsistencyQuery> {
        let [from, to] = two_sizes(pairs, ["from", "to"])?;
        Ok(ConsistencyQuery { from, to })
    }
}

fn hashes_json(hashes: &[auditlog_core::merkle::Hash]) -> Response {
    let hex: Vec<String> = hashes.iter().map(hex::encode).collect();
    axum::Json(json!({ "hashes": hex })).into_response()
}

/// `GET …/proof/inclusion?seq=N&size=S`
#[utoipa::path(get, path = "/v1/accounts/{account}/proof/inclusion", params(("account" = String, Path, description = "Account id"), ("seq" = u64, Query,), ("size" = u64, Query,)),
    responses((status = 200, description = "RFC 9162 inclusion proof", body = crate::schema::ProofHashes), (status = 400, description = "Impossible sizes", body = crate::schema::Problem)))]
pub async fn inclusion(
    State(st): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    query: ApiResult<Params<InclusionQuery>>,
) -> ApiResult<Response> {
    let account = caller.authorize(&account, Needed::Read)?;
    let Params(q) = query?;
    Ok(hashes_json(
        &st.store.inclusion_proof(&account, q.seq, q.size).await?,
    ))
}

/// `GET …/proof/consistency?from=S1&to=S2`
#[utoipa::path(get, path = "/v1/accounts/{account}/proof/consistency", params(("account" = String, Path, description = "Account id"), ("from" = u64, Query,), ("to" = u64, Query,)),
    responses((status = 200, description = "RFC 9162 consistency proof", body = crate::schema::ProofHashes), (status = 400, description = "Impossible sizes", body = crate::schema::Problem)))]
pub async fn consistency(
    State(st): State<AppState>,
    caller: Caller,
    Path(account): Path<String>,
    query: ApiResult<Params<ConsistencyQuery>>,
) -> ApiResult<Response> {
    let account = caller.authorize(&account, Needed::Read)?;
    let Params(q) = query?;
    Ok(hashes_json(
        &st.store.consistency_proof(&account, q.from, q.to).await?,
    ))
}

/// `GET /v1/accounts/{account}/events/{id}/proof`: a self-contained proof
/// bundle for one event (its record, the inclusion path and the signed
/// checkpoint it is proven against), verifiable alone with
/// `auditlog verify --proof FILE --public-key KEY`, as C2SP tlog-proof does.
#[utoipa::path(get, path = "/v1/accounts/{account}/events/{id}/proof",
    params(("account" = String, Path, description = "Account id"), ("id" = String, Path, description = "Event id")),
    responses((status = 200, description = "{record, seq, size, hashes, checkpoint}"), (status = 404, description = "No such event", body = crate::schema::Problem)))]
pub async fn event_proof(
    State(st): State<AppState>,
    caller: Caller,
    Path((account, id)): Path<(String, String)>,
) -> ApiResult<Response> {
    let account = caller.authorize(&account, Needed::Read)?;
    let record = record_or_404(&st, &account, &id).await?;
    sign_account(&st, &account).await?;
    let note = st
        .store
        .latest_checkpoint(&account)
        .await?
        .ok_or_else(|| ApiError::Internal("an account with events has no checkpoint".into()))?;
    let checkpoint = auditlog_core::checkpoint::open_note(&note, &st.signer.verifier())
        .map_err(|e| ApiError::Internal(format!("own checkpoint does not open: {e}")))?;
    let hashes = st
        .store
        .inclusion_proof(&account, record.body.seq, checkpoint.size)
        .await?;
    let bundle = auditlog_core::verify::ProofBundle::new(&record, checkpoint.size, hashes, note);
    Ok(axum::Json(bundle).into_response())
}
