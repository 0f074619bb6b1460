// Lists a manager's portfolio through openapi-fetch and the types openapi-typescript
// generates from Baton's spec (npm run build writes both, and compiles this file).
import createClient from "openapi-fetch";
import type { components, paths } from "./baton";

type Customer = components["schemas"]["CustomerOut"];

const params = new URLSearchParams(location.search);
const api = params.get("api") ?? "http://127.0.0.1:8000";
const wanted = params.get("manager") ?? "";

function apiKey(): string {
  // A demo: a real front-end gets its credentials from its own sign-in, never from the URL.
  const key = params.get("key") ?? sessionStorage.getItem("baton-key") ?? prompt("Baton API key") ?? "";
  sessionStorage.setItem("baton-key", key);
  return key;
}

const baton = createClient<paths>({
  baseUrl: api,
  headers: { Authorization: `Bearer ${apiKey()}` },
});

const status = document.getElementById("status") as HTMLParagraphElement;

function show(message: string, error = false): void {
  status.textContent = message;
  status.className = error ? "error" : "";
}

async function managerId(): Promise<{ id: string; name: string }> {
  // An id, or the CRM's external_ref
  const looksLikeId = /^[0-9a-f-]{36}$/i.test(wanted);
  const found = looksLikeId
    ? await baton.GET("/v1/managers/{manager_id}", { params: { path: { manager_id: wanted } } })
    : await baton.GET("/v1/managers/by-ref/{external_ref}", {
        params: { path: { external_ref: wanted } },
      });
  if (!found.data) throw new Error(found.error?.detail ?? "manager not found");
  return { id: found.data.id, name: found.data.name };
}

async function portfolio(id: string): Promise<Customer[]> {
  const customers: Customer[] = [];
  let cursor: string | undefined;
  do {
    const page = await baton.GET("/v1/managers/{manager_id}/customers", {
      params: { path: { manager_id: id }, query: { limit: 500, cursor } },
    });
    if (!page.data) throw new Error(page.error?.detail ?? "could not read the portfolio");
    customers.push(...page.data.items);
    cursor = page.data.next_cursor ?? undefined;
  } while (cursor);
  return customers;
}

async function main(): Promise<void> {
  const manager = await managerId();
  (document.getElementById("manager") as HTMLHeadingElement).textContent = manager.name;
  const customers = await portfolio(manager.id);
  const rows = document.getElementById("customers") as HTMLTableSectionElement;
  for (const customer of customers) {
    const row = rows.insertRow();
    row.dataset.customerId = customer.id;
    for (const cell of [customer.name, customer.tier, customer.region, customer.annual_value]) {
      row.insertCell().textContent = cell == null ? "" : String(cell);
    }
  }
  (rows.parentElement as HTMLTableElement).hidden = false;
  show(`${customers.length} customers`);
}

main().catch((error: unknown) => {
  // A blocked cross-origin read surfaces as a TypeError ("Failed to fetch").
  show(`Cannot read the portfolio: ${error instanceof Error ? error.message : String(error)}`, true);
});
