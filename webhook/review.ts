/**
 * AdmissionReview v1 in, AdmissionReview v1 out
 * (https://kubernetes.io/docs/reference/access-authn-authz/extensible-admission-controllers/#request).
 *
 * Decodes the raw body, calls `mutate`, and turns the difference between the request's own object
 * and the result into a JSON patch. The patch is computed against the raw JSON the API server sent,
 * so fields this code has never heard of are neither dropped nor rewritten.
 *
 * Returns values and never throws. The webhook runs with `failurePolicy: Ignore`, and every answer
 * it gives allows the pod: a review it cannot read gets a 400 (the API server then applies the
 * failure policy and creates the pod unchanged), with a body that says what was wrong and echoes
 * the uid whenever one could be read (cf. controller-runtime pkg/webhook/admission/http.go, which
 * also answers bad requests with an AdmissionReview-shaped error).
 */
import jsonPatch, { type Operation } from 'fast-json-patch';
import { ANNOTATION } from '../shared/names.ts';
import type { SidecarSettings } from './config.ts';
import { mutate, type Injection, type Skip } from './mutate.ts';
import { checkPodShape, type RawPod } from './pod.ts';
import { jobOf, type JobOwnerLookup, type JobRef } from './workload.ts';
import type { SidecarMode } from '../shared/names.ts';

export const ADMISSION_API_VERSION = 'admission.k8s.io/v1';
export const ADMISSION_KIND = 'AdmissionReview';

export interface AdmissionResponse {
  readonly uid: string;
  readonly allowed: boolean;
  readonly patchType?: 'JSONPatch';
  /** base64 of the JSON patch. */
  readonly patch?: string;
  /** Not consulted by the API server when allowed; says what happened for humans and tests. */
  readonly status?: { readonly code: number; readonly message: string };
  /** Shown to the client that created the pod (kubectl prints them). */
  readonly warnings?: readonly string[];
}

export interface AdmissionReviewOut {
  readonly apiVersion: typeof ADMISSION_API_VERSION;
  readonly kind: typeof ADMISSION_KIND;
  readonly response: AdmissionResponse;
}

/** `overloaded`: refused before its body was read, because the bodies in flight fill the budget. */
export type Outcome = 'injected' | 'skipped' | 'ignored' | 'bad_request' | 'too_large' | 'overloaded' | 'error';
export const OUTCOMES: readonly Outcome[] = ['injected', 'skipped', 'ignored', 'bad_request', 'too_large', 'overloaded', 'error'];

export interface ReviewAnswer {
  readonly httpStatus: number;
  readonly body: AdmissionReviewOut;
  readonly outcome: Outcome;
  /** What to log: the skip, the injection, or why the review was not handled. */
  readonly detail: {
    readonly uid?: string;
    readonly namespace?: string;
    readonly pod?: string;
    readonly dryRun?: boolean;
    readonly skip?: Skip;
    readonly injection?: Injection;
    readonly message?: string;
    readonly patchOps?: number;
    readonly jobOwner?: JobOwnerLookup;
  };
}

/** The part of an AdmissionRequest the webhook reads. */
export interface AdmissionRequestView {
  readonly uid: string;
  readonly kind: { readonly group: string; readonly version: string; readonly kind: string };
  readonly operation: string;
  readonly namespace?: string;
  readonly dryRun: boolean;
  readonly subResource?: string;
  readonly object: unknown;
}

export type Decoded =
  | { readonly ok: true; readonly request: AdmissionRequestView }
  | { readonly ok: false; readonly uid: string; readonly message: string };

export interface ReviewDeps {
  readonly sidecar: SidecarSettings;
  /** The mode in force now; `auto` may switch from legacy to native once the version is known. */
  readonly mode: () => SidecarMode;
  /** Asks the API who owns the Job; absent when the lookup is off. Must not throw. */
  readonly lookupJobOwner?: (namespace: string, job: JobRef) => Promise<JobOwnerLookup>;
  /** The `excludedNamespaces` setting; absent: the built-in default (webhook/config.ts). */
  readonly excludedNamespaces?: readonly string[];
  readonly now: () => number;
}

const isObject = (v: unknown): v is Record<string, unknown> => typeof v === 'object' && v !== null && !Array.isArray(v);

/** What is wrong with a request.uid that is not a usable string; the API server sends a UUID. */
function uidProblem(uid: unknown): string {
  if (uid === undefined) return 'request.uid is missing';
  if (uid === '') return 'request.uid is empty';
  return `request.uid is ${jsonType(uid)}, expected a string`;
}

/** The JSON type of a decoded value, with its article, for messages: "a number", "null", "an array". */
function jsonType(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'an array';
  if (typeof v === 'object') return 'an object';
  return `a ${typeof v}`;
}

/** Parses and checks the envelope. Pure. */
export function decodeReview(body: string): Decoded {
  let review: unknown;
  try {
    review = JSON.parse(body);
  } catch (cause) {
    return { ok: false, uid: '', message: `body is not JSON: ${(cause as Error).message}` };
  }
  if (!isObject(review)) return { ok: false, uid: '', message: 'body is not a JSON object' };
  const request = review['request'];
  const uid = isObject(request) && typeof request['uid'] === 'string' ? request['uid'] : '';
  if (review['kind'] !== ADMISSION_KIND || review['apiVersion'] !== ADMISSION_API_VERSION) {
    return {
      ok: false,
      uid,
      message: `expected kind ${ADMISSION_KIND} apiVersion ${ADMISSION_API_VERSION}, got kind ${JSON.stringify(review['kind'])} apiVersion ${JSON.stringify(review['apiVersion'])}`,
    };
  }
  if (!isObject(request)) return { ok: false, uid, message: 'AdmissionReview has no request' };
  if (uid === '') return { ok: false, uid, message: uidProblem(request['uid']) };
  const kind = request['kind'];
  if (!isObject(kind) || typeof kind['kind'] !== 'string') return { ok: false, uid, message: 'request.kind is missing' };
  if (typeof request['operation'] !== 'string') return { ok: false, uid, message: 'request.operation is missing' };
  const namespace = request['namespace'];
  const subResource = request['subResource'];
  return {
    ok: true,
    request: {
      uid,
      kind: { group: String(kind['group'] ?? ''), version: String(kind['version'] ?? ''), kind: kind['kind'] },
      operation: request['operation'],
      ...(typeof namespace === 'string' && namespace !== '' && { namespace }),
      ...(typeof subResource === 'string' && subResource !== '' && { subResource }),
      dryRun: request['dryRun'] === true,
      object: request['object'],
    },
  };
}

/** The JSON patch from the request's object to the mutated one; empty when nothing changed. */
export function diffPatch(original: RawPod, mutated: RawPod): Operation[] {
  return jsonPatch.compare(original, mutated);
}

export function reviewOut(response: AdmissionResponse): AdmissionReviewOut {
  return { apiVersion: ADMISSION_API_VERSION, kind: ADMISSION_KIND, response };
}

/** An answer for a review that could not be handled; still allows, still echoes the uid. */
export function errorAnswer(httpStatus: number, outcome: Outcome, uid: string, message: string): ReviewAnswer {
  return {
    httpStatus,
    outcome,
    body: reviewOut({ uid, allowed: true, status: { code: httpStatus, message } }),
    detail: { ...(uid !== '' && { uid }), message },
  };
}

/** The whole review: body in, answer out. Never throws. */
export async function review(body: string, deps: ReviewDeps): Promise<ReviewAnswer> {
  const decoded = decodeReview(body);
  if (!decoded.ok) return errorAnswer(400, 'bad_request', decoded.uid, decoded.message);
  const req = decoded.request;
  try {
    return await reviewRequest(req, deps);
  } catch (cause) {
    // A bug, not an input problem: the pod still goes through, unchanged.
    return errorAnswer(500, 'error', req.uid, `internal error: ${(cause as Error).message}`);
  }
}

async function reviewRequest(req: AdmissionRequestView, deps: ReviewDeps): Promise<ReviewAnswer> {
  const ignore = (message: string): ReviewAnswer => ({
    httpStatus: 200,
    outcome: 'ignored',
    body: reviewOut({ uid: req.uid, allowed: true, status: { code: 200, message } }),
    detail: { uid: req.uid, message, dryRun: req.dryRun },
  });
  if (req.kind.kind !== 'Pod' || req.kind.group !== '' || req.subResource !== undefined) {
    const what = `${req.kind.group === '' ? '' : req.kind.group + '/'}${req.kind.kind}${req.subResource ? '/' + req.subResource : ''}`;
    return ignore(`${what} is not handled; only pods are`);
  }
  // Only creation: the API server forbids adding containers to a running pod anyway.
  if (req.operation !== 'CREATE') return ignore(`operation ${req.operation} is not handled; only CREATE is`);
  const shape = checkPodShape(req.object);
  if (!shape.ok) return errorAnswer(400, 'bad_request', req.uid, `request.object is not a usable Pod: ${shape.error}`);
  const pod = shape.pod;
  const namespace = req.namespace ?? pod.metadata?.namespace;

  // dryRun requests get the same answer: the webhook has no side effects (sideEffects: None),
  // and the GET below is a read.
  let jobOwner: JobOwnerLookup | undefined;
  const job = jobOf(pod);
  if (deps.lookupJobOwner && job && namespace !== undefined && pod.metadata?.annotations?.[ANNOTATION.workload] === undefined) {
    jobOwner = await deps.lookupJobOwner(namespace, job);
  }
  const result = mutate(pod, {
    sidecar: deps.sidecar,
    mode: deps.mode(),
    nowMs: deps.now(),
    ...(jobOwner !== undefined && { jobOwner }),
    ...(namespace !== undefined && { namespace }),
    ...(deps.excludedNamespaces !== undefined && { excludedNamespaces: deps.excludedNamespaces }),
  });
  const ops = diffPatch(pod, result.pod);
  const podName = pod.metadata?.name || pod.metadata?.generateName || '';
  const detail = {
    uid: req.uid,
    ...(namespace !== undefined && { namespace }),
    pod: podName,
    dryRun: req.dryRun,
    patchOps: ops.length,
    ...(jobOwner !== undefined && { jobOwner }),
  };
  const response: AdmissionResponse =
    ops.length === 0
      ? { uid: req.uid, allowed: true }
      : {
          uid: req.uid,
          allowed: true,
          patchType: 'JSONPatch',
          patch: Buffer.from(JSON.stringify(ops)).toString('base64'),
          ...(!result.inject &&
            (result.skip.reason === 'invalid-annotation' || result.skip.reason === 'invalid-port') && { warnings: [`jobmetrics: ${result.skip.message}`] }),
        };
  return result.inject
    ? { httpStatus: 200, outcome: 'injected', body: reviewOut(response), detail: { ...detail, injection: result.injection } }
    : { httpStatus: 200, outcome: 'skipped', body: reviewOut(response), detail: { ...detail, skip: result.skip } };
}
