// A short story against Baton through openapi-fetch and the types openapi-typescript
// generates from the committed spec; `tsc --noEmit --strict` must accept it.
import createClient from "openapi-fetch";
import type { components, paths } from "./baton";

type Customer = components["schemas"]["CustomerOut"];
type Problem = components["schemas"]["Problem"];

export async function story(baseUrl: string, apiKey: string): Promise<Customer[]> {
  const baton = createClient<paths>({
    baseUrl,
    headers: { Authorization: `Bearer ${apiKey}` },
  });

  await baton.POST("/v1/tiers", {
    body: { code: "standard", name: "Standard", rank: 3, weight: 2, min_manager_level: 2 },
  });
  const leaving = await baton.POST("/v1/managers", {
    body: { name: "Li Na", email: "li.na@example.com", level: 4, capacity: 40 },
  });
  const successor = await baton.POST("/v1/managers", {
    body: { name: "Wang Fang", email: "wang.fang@example.com", level: 4, capacity: 40 },
  });
  if (!leaving.data || !successor.data) {
    const problem: Problem | undefined = leaving.error ?? successor.error;
    throw new Error(problem?.detail ?? "could not create the managers");
  }
  const created = await baton.POST("/v1/customers", {
    body: { name: "Hangzhou Precision Parts Co.", tier: "standard" },
  });
  if (created.error) throw new Error(created.error.detail ?? created.error.title);
  const location: string | null = created.response.headers.get("Location");

  const plan = await baton.POST("/v1/assignments/plan", { body: {} });
  if (plan.error) throw new Error(plan.error.title);
  const token: string | null | undefined = plan.data.plan_token;
  await baton.POST("/v1/assignments/apply", { body: { plan_token: token } });

  const handover = await baton.POST("/v1/handovers", {
    body: {
      from_manager_id: leaving.data.id,
      reason: "departure",
      strategy: "successor",
      successor_id: successor.data.id,
    },
  });
  if (handover.error) throw new Error(handover.error.title);
  const params = { path: { handover_id: handover.data.id } };
  await baton.POST("/v1/handovers/{handover_id}/plan", { params });
  await baton.POST("/v1/handovers/{handover_id}/approve", { params });
  const executed = await baton.POST("/v1/handovers/{handover_id}/execute", { params });
  const state: string | undefined = executed.data?.state;
  const outcome = await baton.GET("/v1/handovers/{handover_id}/outcome", { params });
  if (outcome.error) throw new Error(`${state}: ${outcome.error.title} (${location})`);

  const portfolio = await baton.GET("/v1/managers/{manager_id}/customers", {
    params: { path: { manager_id: successor.data.id }, query: { limit: 50 } },
  });
  return portfolio.data?.items ?? [];
}
