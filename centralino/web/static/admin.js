// Administration: agents' skills and queues' service-level thresholds, through /api/admin.
// Each save sends the version it read; someone else's change in between answers 409 and the
// row is read again. Every string from the server goes through textContent (el), never markup.
import { api, clear, el } from "/static/ui.js";

const notice = document.getElementById("notice");

function say(message, tone) {
  notice.textContent = message;
  notice.className = `pill ${tone || ""}`;
}

function skillInput(agentId, skill, level) {
  return el("label", { class: "small skill" }, `${skill} `,
    el("input", {
      type: "number", min: "0", max: "5", step: "1", value: String(level), size: "2",
      "data-skill": skill, "data-testid": `skill-${agentId}-${skill}`,
      "aria-label": `${agentId} ${skill} level`,
    }));
}

function agentRow(agent) {
  const skills = el("span", { class: "skills" },
    ...Object.entries(agent.skills).sort().map(([s, lv]) => skillInput(agent.id, s, lv)));
  const newSkill = el("input", { type: "text", placeholder: "new skill", size: "10", "data-testid": `new-skill-${agent.id}`, "aria-label": "new skill" });
  const newLevel = el("input", { type: "number", min: "1", max: "5", value: "1", size: "2", "aria-label": "new skill level" });
  const save = el("button", {
    type: "button", class: "small", "data-testid": `save-agent-${agent.id}`,
    onclick: async () => {
      const levels = {};
      for (const input of skills.querySelectorAll("input[data-skill]")) {
        const level = Number(input.value);
        if (level > 0) levels[input.dataset.skill] = level;
      }
      const added = newSkill.value.trim();
      if (added) levels[added] = Number(newLevel.value);
      const { version, ...row } = agent;
      await saveRow(`/api/admin/agents/${encodeURIComponent(agent.id)}`, { ...row, skills: levels, version }, `agent ${agent.id}`);
    },
  }, "Save");
  return el("tr", { "data-agent": agent.id },
    el("td", {}, agent.id, agent.name ? el("div", { class: "muted small" }, agent.name) : null),
    el("td", {}, agent.teams.join(", ")),
    el("td", {}, skills, el("span", { class: "small new-skill" }, newSkill, newLevel)),
    el("td", {}, save));
}

function queueRow(queue) {
  const threshold = el("input", {
    type: "number", min: "1", step: "1", value: String(queue.sl_target_s), class: "threshold",
    "data-testid": `sl-${queue.name}`, "aria-label": `${queue.name} service level threshold`,
  });
  const save = el("button", {
    type: "button", class: "small", "data-testid": `save-queue-${queue.name}`,
    onclick: async () => {
      const { version, ...row } = queue;
      await saveRow(`/api/admin/queues/${encodeURIComponent(queue.name)}`, { ...row, sl_target_s: Number(threshold.value), version }, `queue ${queue.name}`);
    },
  }, "Save");
  return el("tr", { "data-queue": queue.name },
    el("td", {}, queue.name), el("td", {}, queue.skill || "—"), el("td", {}, queue.strategy),
    el("td", {}, threshold), el("td", {}, `${Math.round(queue.sl_goal * 100)} %`), el("td", {}, save));
}

async function saveRow(url, body, what) {
  say("Saving…", "info");
  try {
    await api("PUT", url, body);
    say(`Saved ${what}`, "ok");
  } catch (error) {
    say(`${what}: ${error.message}`, "bad");
  }
  await load();
}

async function load() {
  const [agents, queues] = await Promise.all([api("GET", "/api/admin/agents"), api("GET", "/api/admin/queues")]);
  const agentRows = clear(document.getElementById("agents"));
  if (!agents.length) agentRows.append(el("tr", {}, el("td", { colspan: "4", class: "empty" }, "No agents")));
  for (const agent of agents) agentRows.append(agentRow(agent));
  const queueRows = clear(document.getElementById("queues"));
  for (const queue of queues) queueRows.append(queueRow(queue));
}

load().catch((error) => say(error.message, "bad"));
