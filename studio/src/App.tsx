import { useEffect, useState } from "react";
import { MoonIcon, SunIcon } from "./components/icons";
import { type Credentials, fetchCredentials } from "./lib/api";
import { errorMessage } from "./lib/format";
import { useHash } from "./lib/hooks";
import { parseRoute } from "./lib/route";
import { Compare } from "./pages/Compare";
import { Data } from "./pages/Data";
import { EndpointDetail, Endpoints } from "./pages/Endpoints";
import { JobDetail } from "./pages/JobDetail";
import { Jobs } from "./pages/Jobs";
import { Overview } from "./pages/Overview";
import { Playground } from "./pages/Playground";

type Theme = "light" | "dark";
const THEME_KEY = "arkor-studio-theme";

function currentTheme(): Theme {
  return document.documentElement.getAttribute("data-theme") === "dark" ? "dark" : "light";
}

function ThemeToggle() {
  const [theme, setTheme] = useState<Theme>(currentTheme);
  const next: Theme = theme === "dark" ? "light" : "dark";
  const flip = () => {
    document.documentElement.setAttribute("data-theme", next);
    try {
      localStorage.setItem(THEME_KEY, next);
    } catch {
      // Storage blocked: the choice lasts for this page only.
    }
    setTheme(next);
  };
  return (
    <button type="button" className="btn icon" onClick={flip} aria-label={`Switch to ${next} theme`} title={`Switch to ${next} theme`}>
      {theme === "dark" ? <SunIcon /> : <MoonIcon />}
    </button>
  );
}

/** `mode · org / project`, plus the backend's host when it is not on this machine. */
export function identityText(c: Credentials): string {
  const mode = c.mode === "anon" ? "anonymous" : c.mode;
  let text = mode;
  if (c.orgSlug) text += ` · ${c.orgSlug}${c.projectSlug ? ` / ${c.projectSlug}` : ""}`;
  try {
    const u = new URL(c.baseUrl);
    if (!["127.0.0.1", "localhost", "[::1]"].includes(u.hostname)) text += ` · ${u.host}`;
  } catch {
    // Not a URL: show nothing more.
  }
  return text;
}

function IdentityChip() {
  const [state, setState] = useState<{ creds?: Credentials; error?: string }>({});
  useEffect(() => {
    fetchCredentials().then(
      (creds) => setState({ creds }),
      (e: unknown) => setState({ error: errorMessage(e) }),
    );
  }, []);
  if (state.error)
    return (
      <span className="chip err" title={state.error} role="status" aria-label={`Identity error: ${state.error}`}>
        <span className="dot" />
        error
      </span>
    );
  if (!state.creds)
    return (
      <span className="chip" role="status">
        <span className="dot" />
        connecting…
      </span>
    );
  const text = identityText(state.creds);
  return (
    <span className="chip ok" role="status" title={`Backend: ${state.creds.baseUrl}`} aria-label={`Signed in as ${text}`}>
      <span className="dot" />
      {text}
    </span>
  );
}

export function App() {
  const hash = useHash();
  const route = parseRoute(hash);
  const tab = route.page === "job" || route.page === "compare" ? "jobs" : route.page === "endpoint" ? "endpoints" : route.page;
  useEffect(() => {
    document.title = "Arkor Studio";
  }, []);
  const navLink = (href: string, name: string, key: string) => (
    <a href={href} aria-current={tab === key ? "page" : undefined}>
      {name}
    </a>
  );
  return (
    <>
      <header className="header">
        <div className="header-row">
          <a className="brand" href="#/" aria-label="Arkor Studio home">
            <span className="brand-mark" aria-hidden="true" />
            Arkor <span className="sub">/ Studio</span>
          </a>
          <span className="spacer" />
          <IdentityChip />
          <ThemeToggle />
        </div>
        <nav className="nav" aria-label="Main">
          {navLink("#/", "Overview", "overview")}
          {navLink("#/jobs", "Jobs", "jobs")}
          {navLink("#/data", "Data", "data")}
          {navLink("#/playground", "Playground", "playground")}
          {navLink("#/endpoints", "Endpoints", "endpoints")}
        </nav>
      </header>
      <main className="main">
        {route.page === "overview" && <Overview />}
        {route.page === "jobs" && <Jobs />}
        {route.page === "job" && <JobDetail key={route.id} id={route.id} />}
        {route.page === "compare" && <Compare key={route.ids.join(",")} ids={route.ids} />}
        {route.page === "playground" && <Playground params={route.params} />}
        {route.page === "data" && <Data params={route.params} />}
        {route.page === "endpoints" && <Endpoints />}
        {route.page === "endpoint" && <EndpointDetail key={route.id} id={route.id} />}
      </main>
    </>
  );
}
