// A Plotly figure that a rerun updates in place (pages/live_chart.py).
//
// st.plotly_chart's element id hashes the figure, so every changed figure is a new element: React mounts it
// afresh and Plotly draws it from nothing (newPlot), 60-125 ms a chart on this machine. Here the element keeps its
// key across reruns, Streamlit calls this function again with the new figure on the same parentElement, and
// Plotly.react redraws only what changed (23-40 ms). Plotly.js itself is served by this app (server static
// serving); the page makes no outside request.
//
// The look is Streamlit's own theme for Plotly charts, read from the theme's CSS variables that Streamlit sets on
// every component: the same placeholder colours its "streamlit" Plotly template (pio.templates.default) uses,
// replaced by the theme's colours, and the same layout defaults, so a chart follows the light or dark theme.

let loading = null;

function plotly(src) {
  if (window.Plotly) return Promise.resolve(window.Plotly);
  if (!loading) {
    loading = new Promise((resolve, reject) => {
      const script = document.createElement("script");
      script.src = src;
      script.onload = () => (window.Plotly ? resolve(window.Plotly) : reject(new Error(`${src} defined no Plotly`)));
      script.onerror = () => { loading = null; reject(new Error(`could not load ${src}`)); };
      document.head.appendChild(script);
    });
  }
  return loading;
}

function theme(element) {
  const css = getComputedStyle(element);
  const v = (name, fallback) => (css.getPropertyValue(`--st-${name}`).trim() || fallback);
  const list = (name) => v(name, "").split(",").map((c) => c.trim()).filter(Boolean);
  const text = v("text-color", "#31333f");
  return {
    text, heading: v("heading-color", text), background: v("background-color", "#ffffff"),
    secondary: v("secondary-background-color", "#f0f2f6"), border: v("border-color", "#d5dae5"),
    grid: v("border-color-light", "#e6eaf1"), font: v("font", "sans-serif"),
    headingFont: v("heading-font", v("font", "sans-serif")),
    categorical: list("chart-categorical-colors"), sequential: list("chart-sequential-colors"),
    diverging: list("chart-diverging-colors"),
    green: v("green-color", "#21c354"), red: v("red-color", "#ff2b2b"), blue: v("blue-color", "#1c83e1"),
    gray: v("gray-color", "#a3a8b8"),
  };
}

// Streamlit's placeholders (streamlit/elements/lib/streamlit_plotly_theme.py): #000001-#000010 categorical,
// #000011-#000020 sequential, #000021-#000030 diverging, then increasing, decreasing, total, gray, gray 70 and 90,
// background, faded text, background mix.
function placeholders(t) {
  const out = [];
  const hex = (n) => `#${String(n).padStart(6, "0")}`;
  [t.categorical, t.sequential, t.diverging].forEach((colours, group) => {
    colours.slice(0, 10).forEach((c, i) => out.push([hex(group * 10 + i + 1), c]));
  });
  [t.green, t.red, t.blue, t.gray, t.text, t.text, t.background, t.grid, t.secondary]
    .forEach((c, i) => out.push([hex(32 + i), c]));
  return out;
}

function merge(into, from) {
  for (const [k, v] of Object.entries(from)) {
    if (v && typeof v === "object" && !Array.isArray(v)) {
      merge(into[k] && typeof into[k] === "object" ? into[k] : (into[k] = {}), v);
    } else {
      into[k] = v;
    }
  }
  return into;
}

function themed(spec, t) {
  let text = spec;
  for (const [from, to] of placeholders(t)) text = text.replaceAll(from, to);
  const fig = JSON.parse(text);
  const layout = (fig.layout = fig.layout || {});
  const template = (layout.template = layout.template || {});
  const axis = (standoff) => ({
    zerolinecolor: t.grid, gridcolor: t.grid, tickcolor: t.grid, automargin: true, minor: { gridcolor: t.grid },
    tickfont: { color: t.text, size: 12 }, title: { font: { color: t.text, size: 14 }, standoff },
  });
  merge((template.layout = template.layout || {}), {
    font: { color: t.text, family: t.font, size: 12 },
    title: { font: { family: t.headingFont, size: 16, color: t.heading }, xanchor: "left", x: 0 },
    legend: { font: { size: 12, color: t.text }, title: { font: { size: 12, color: t.text } }, valign: "top",
              borderwidth: 0 },
    paper_bgcolor: t.background, plot_bgcolor: t.background,
    xaxis: merge(axis(16), { showgrid: false, zeroline: false }), yaxis: axis(24),
    margin: { pad: 8, r: 0, l: 0 },
    hoverlabel: { bgcolor: t.background, bordercolor: t.border, font: { color: t.text, family: t.font, size: 12 } },
  });
  if (typeof layout.title === "string") layout.title = { text: layout.title };
  if (layout.title && typeof layout.title.text === "string" && !layout.title.text.startsWith("<b>")) {
    layout.title.text = `<b>${layout.title.text}</b>`;
  }
  return fig;
}

// Full screen, as st.plotly_chart's toolbar had it (a class on a projector): the chart alone, as tall as the screen
const FULL = {
  name: "fullscreen", title: "Full screen",
  icon: { width: 24, height: 24, path: "M7 14H5v5h5v-2H7v-3zm-2-4h2V7h3V5H5v5zm12 7h-3v2h5v-5h-2v3zM14 5v2h3v3h2V5h-5z" },
  click: (gd) => (document.fullscreenElement ? document.exitFullscreen() : gd.requestFullscreen()),
};

// st.plotly_chart's configuration: no logo, no selection tools (nothing reads a selection), and no "Share chart"
// (Plotly.js 4 shows it by default: it uploads the chart to Plotly Cloud)
const CONFIG = {
  displaylogo: false, showSendToCloud: false, responsive: false, modeBarButtonsToAdd: [FULL],
  modeBarButtonsToRemove: ["lasso2d", "select2d", "sendChartToCloud"],
};

export default function ({ data, parentElement }) {
  let div = parentElement.querySelector("div.live-chart");
  if (!div) {
    div = document.createElement("div");
    div.className = "live-chart";
    parentElement.appendChild(div);
  }
  const fig = themed(data.spec, theme(parentElement));
  div.height = fig.layout.height;
  plotly(data.src)
    .then((Plotly) => {
      const layout = div.full ? { ...fig.layout, height: window.innerHeight } : fig.layout;
      Plotly.react(div, fig.data, layout, CONFIG);
      if (!div.onfullscreenchange) {
        div.onfullscreenchange = () => {
          div.full = document.fullscreenElement === div;
          Plotly.relayout(div, { height: div.full ? window.innerHeight : div.height });
        };
      }
      if (!div.resized) {  // the column's width, not only the window's, sets the chart's (a sidebar opening)
        let width = div.clientWidth;
        div.resized = new ResizeObserver(() => {
          if (div.isConnected && div.clientWidth !== width) { width = div.clientWidth; Plotly.Plots.resize(div); }
        });
        div.resized.observe(div);
      }
    })
    .catch((e) => {
      div.textContent = `This chart could not be drawn: ${e.message}. Reload the page; if it stays, restart the ` +
        "dashboard with its settings (bash scripts/dev.sh app), which serve Plotly.js.";
    });
}
