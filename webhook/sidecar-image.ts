/**
 * Which sidecar image the webhook injects when `sidecar.image` is left empty (the shipped
 * manifests do): the webhook's own image with `jobmetrics-webhook` replaced by `jobmetrics-sidecar`
 * — the same registry, path and tag. So the one image setting an admin changes (a kustomize
 * `images:` entry, `kubectl set image`, the chart's image.registry/image.tag) moves both images,
 * `npm run images -- push` pushes the pair under one tag, and a webhook that runs at all has
 * proven that its registry serves that tag to the cluster: a wrong sidecar image cannot
 * silently hang every Job pod (docs/install.md "Building the images").
 *
 * Pure; webhook/main.ts reads the image from the webhook's own Pod (JOBMETRICS_POD_NAME).
 */

export const WEBHOOK_REPOSITORY = 'jobmetrics-webhook';
export const SIDECAR_REPOSITORY = 'jobmetrics-sidecar';

/** `registry/path/name[:tag][@digest]` split into its parts (a port's colon is not a tag's). */
export function splitImage(image: string): { name: string; tag?: string; digest?: string } {
  const at = image.indexOf('@');
  const digest = at >= 0 ? image.slice(at + 1) : undefined;
  const rest = at >= 0 ? image.slice(0, at) : image;
  const colon = rest.lastIndexOf(':');
  const hasTag = colon > rest.lastIndexOf('/');
  return {
    name: hasTag ? rest.slice(0, colon) : rest,
    ...(hasTag && { tag: rest.slice(colon + 1) }),
    ...(digest !== undefined && { digest }),
  };
}

/**
 * The sidecar image beside `webhookImage`, or why there is none: a digest names exactly one
 * image, so the sidecar's cannot be derived from it (set `sidecar.image` then), and an image not
 * named `…/jobmetrics-webhook` gives no name to follow.
 */
export function sidecarImageBeside(webhookImage: string): { image: string } | { error: string } {
  const { name, tag, digest } = splitImage(webhookImage.trim());
  const slash = name.lastIndexOf('/');
  const last = name.slice(slash + 1);
  if (last !== WEBHOOK_REPOSITORY) {
    return { error: `the webhook's image ${webhookImage} is not named …/${WEBHOOK_REPOSITORY}, so the sidecar's cannot follow it: set sidecar.image (JOBMETRICS_SIDECAR_IMAGE)` };
  }
  if (digest !== undefined && tag === undefined) {
    return { error: `the webhook's image ${webhookImage} is pinned by digest only, which names no sidecar image: set sidecar.image (JOBMETRICS_SIDECAR_IMAGE), by digest too` };
  }
  const sidecar = `${name.slice(0, slash + 1)}${SIDECAR_REPOSITORY}`;
  return { image: tag === undefined ? sidecar : `${sidecar}:${tag}` };
}

/** The image of container `container` in a Pod object as the API returns it. */
export function containerImage(pod: unknown, container: string): string | undefined {
  const containers = (pod as { spec?: { containers?: { name?: unknown; image?: unknown }[] } } | null)?.spec?.containers ?? [];
  const found = containers.find((c) => c.name === container);
  return typeof found?.image === 'string' ? found.image : undefined;
}
