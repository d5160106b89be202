/**
 * The queries of a rendered dashboard (Grafana's JSON model, schema v1), with the dashboard's
 * variables replaced by values, as Grafana would send them to Prometheus. Pure: used by the test
 * that runs every panel's query against a real Prometheus (test/e2e/real-pods.test.ts).
 */

export interface PanelQuery {
  /** The panel's title, variables replaced. */
  readonly panel: string;
  readonly refId: string;
  /** The PromQL, variables replaced. */
  readonly expr: string;
  /** Instant queries are read at the end of the range; the others over it. */
  readonly instant: boolean;
  readonly legend?: string;
}

interface JsonPanel {
  readonly title?: string;
  readonly type?: string;
  readonly panels?: readonly JsonPanel[];
  readonly targets?: readonly { refId?: string; expr?: string; instant?: boolean; legendFormat?: string }[];
}

/** Every panel's queries, in the dashboard's order (collapsed rows' panels included). */
export function panelQueries(dashboard: { readonly panels?: readonly JsonPanel[] }, values: Readonly<Record<string, string>>): PanelQuery[] {
  const flat = (panels: readonly JsonPanel[]): JsonPanel[] => panels.flatMap((p) => [p, ...flat(p.panels ?? [])]);
  return flat(dashboard.panels ?? []).flatMap((p) =>
    (p.targets ?? []).map((t) => {
      if (t.expr === undefined || t.refId === undefined) throw new Error(`panel ${JSON.stringify(p.title)}: a query without expr or refId`);
      return {
        panel: substitute(p.title ?? '', values),
        refId: t.refId,
        expr: substitute(t.expr, values),
        instant: t.instant === true,
        ...(t.legendFormat !== undefined ? { legend: t.legendFormat } : {}),
      };
    }),
  );
}

/**
 * Replaces `$name` and `${name}` (Grafana's variable syntax, the `${name:format}` form too) with
 * values[name]; a variable without a value is an error, so no query reaches Prometheus with a `$`
 * left in it. Longest name first, as Grafana matches: `$job` does not match inside `$jobs`.
 */
export function substitute(text: string, values: Readonly<Record<string, string>>): string {
  return text.replace(/\$\{(\w+)(?::\w+)?\}|\$(\w+)/g, (whole, braced: string | undefined, bare: string | undefined) => {
    const name = braced ?? bare ?? '';
    const value = values[name];
    if (value === undefined) throw new Error(`no value for the variable ${whole} in ${JSON.stringify(text)}`);
    return value;
  });
}

/** The variables a dashboard declares (templating.list), by name. */
export function variableNames(dashboard: { readonly templating?: { readonly list?: readonly { readonly name: string }[] } }): string[] {
  return (dashboard.templating?.list ?? []).map((v) => v.name);
}
