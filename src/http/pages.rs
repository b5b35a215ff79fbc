//! The files of the two web pages, compiled into the binary (they work from any working
//! directory, offline) and listed once: each listener's routes and the admin listener's
//! token-free check are built from these lists, so they cannot drift apart.

use actix_web::HttpResponse;
use actix_web::http::header;
use actix_web::web::{self, Bytes};

/// One file a page loads, at the path the page asks for.
pub struct PageFile {
    pub path: &'static str,
    pub content_type: &'static str,
    pub body: &'static str,
}

const HTML: &str = "text/html; charset=utf-8";
const JS: &str = "text/javascript; charset=utf-8";
const CSS: &str = "text/css; charset=utf-8";
const SVG: &str = "image/svg+xml";

macro_rules! page_file {
    ($path:literal, $content_type:expr, $file:literal) => {
        PageFile {
            path: $path,
            content_type: $content_type,
            body: include_str!(concat!("../../static/", $file)),
        }
    };
}

/// Loaded by both pages: the DOM helpers (text only, never HTML), the base styles, the icon.
const SHARED: &[PageFile] = &[
    page_file!("/dom.js", JS, "dom.js"),
    page_file!("/base.css", CSS, "base.css"),
    page_file!("/favicon.svg", SVG, "favicon.svg"),
];

/// The public page's own files; the page itself is [`PublicIndex`].
const PUBLIC: &[PageFile] = &[
    page_file!("/app.js", JS, "app.js"),
    page_file!("/style.css", CSS, "style.css"),
];

/// The operator's page on the admin listener: one ES module per panel, and their helpers.
const ADMIN: &[PageFile] = &[
    page_file!("/", HTML, "admin.html"),
    page_file!("/index.html", HTML, "admin.html"),
    page_file!("/admin.css", CSS, "admin.css"),
    page_file!("/admin/main.js", JS, "admin/main.js"),
    page_file!("/admin/api.js", JS, "admin/api.js"),
    page_file!("/admin/ui.js", JS, "admin/ui.js"),
    page_file!("/admin/token.js", JS, "admin/token.js"),
    page_file!("/admin/health.js", JS, "admin/health.js"),
    page_file!("/admin/live.js", JS, "admin/live.js"),
    page_file!("/admin/orders.js", JS, "admin/orders.js"),
    page_file!("/admin/letters.js", JS, "admin/letters.js"),
    page_file!("/admin/replay.js", JS, "admin/replay.js"),
];

/// The public listener's files but the page itself.
pub fn public_files() -> impl Iterator<Item = &'static PageFile> {
    PUBLIC.iter().chain(SHARED)
}

/// Every file of the operator's page, the page included.
pub fn admin_files() -> impl Iterator<Item = &'static PageFile> {
    ADMIN.iter().chain(SHARED)
}

/// Whether `path` is a file of the operator's page: static, no data in it, so it loads
/// without the token (the page then sends the token with its own requests).
pub fn is_admin_file(path: &str) -> bool {
    admin_files().any(|f| f.path == path)
}

/// Registers `GET` for each file.
pub fn serve(cfg: &mut web::ServiceConfig, files: impl Iterator<Item = &'static PageFile>) {
    for file in files {
        cfg.service(web::resource(file.path).get(move || async move { file.response() }));
    }
}

impl PageFile {
    fn response(&self) -> HttpResponse {
        static_file(self.content_type, Bytes::from_static(self.body.as_bytes()))
    }
}

fn static_file(content_type: &'static str, body: Bytes) -> HttpResponse {
    HttpResponse::Ok()
        .content_type(content_type)
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(body)
}

const INDEX_HTML: &str = include_str!("../../static/index.html");
/// Where the public page learns whether it shows the recent-orders list (no inline script:
/// an attribute its script reads).
const ORDER_LIST_OFF: &str = r#"<body data-order-list="off">"#;
const ORDER_LIST_ON: &str = r#"<body data-order-list="on">"#;

/// The public page (`/`), made once at start-up: it shows the recent-orders list only when
/// `PUBLIC_ORDER_LIST` puts `/orders` on the public listener.
#[derive(Clone)]
pub struct PublicIndex(Bytes);

impl PublicIndex {
    pub fn new(order_list: bool) -> Self {
        let html = if order_list {
            INDEX_HTML.replacen(ORDER_LIST_OFF, ORDER_LIST_ON, 1)
        } else {
            INDEX_HTML.to_string()
        };
        Self(Bytes::from(html))
    }

    pub fn response(&self) -> HttpResponse {
        static_file(HTML, self.0.clone())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeSet;
    use std::path::Path;

    fn static_dir() -> &'static Path {
        Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/static"))
    }

    #[test]
    fn every_module_of_the_operators_page_is_served_and_every_import_resolves() {
        let on_disk: BTreeSet<String> = std::fs::read_dir(static_dir().join("admin"))
            .expect("static/admin")
            .map(|e| format!("/admin/{}", e.expect("entry").file_name().to_string_lossy()))
            .collect();
        let served: BTreeSet<String> = admin_files()
            .filter(|f| f.path.starts_with("/admin/"))
            .map(|f| f.path.to_string())
            .collect();
        assert_eq!(
            served, on_disk,
            "static/admin/ and the served modules differ"
        );
        // A module a module imports is served by the same listener (imports are relative).
        for file in admin_files().filter(|f| f.content_type == JS) {
            for import in imports(file.body) {
                let base = file.path.rsplit_once('/').map_or("", |(dir, _)| dir);
                let target = resolve(base, &import);
                assert!(
                    is_admin_file(&target),
                    "{} imports {import} ({target}), which the admin listener does not serve",
                    file.path
                );
            }
        }
        // And the page's own entry point is one of them.
        let html = admin_files().find(|f| f.path == "/").expect("page").body;
        assert!(html.contains(r#"<script type="module" src="admin/main.js"></script>"#));
    }

    #[test]
    fn the_public_page_imports_only_what_the_public_listener_serves() {
        for file in public_files().filter(|f| f.content_type == JS) {
            for import in imports(file.body) {
                let target = resolve("", &import);
                assert!(
                    public_files().any(|f| f.path == target),
                    "{} imports {import}, which the public listener does not serve",
                    file.path
                );
            }
        }
    }

    #[test]
    fn the_public_page_carries_the_order_list_switch_once() {
        assert_eq!(INDEX_HTML.matches(ORDER_LIST_OFF).count(), 1);
        let on = PublicIndex::new(true);
        let on = std::str::from_utf8(&on.0).expect("utf-8");
        assert!(on.contains(ORDER_LIST_ON) && !on.contains(ORDER_LIST_OFF));
        let off = PublicIndex::new(false);
        assert!(
            std::str::from_utf8(&off.0)
                .expect("utf-8")
                .contains(ORDER_LIST_OFF)
        );
    }

    /// The specifiers of the `import … from '…'` statements (also those whose `} from '…'`
    /// ends a statement over several lines).
    fn imports(js: &str) -> Vec<String> {
        js.lines()
            .map(str::trim_start)
            .filter(|l| l.starts_with("import ") || l.starts_with("} from "))
            .filter_map(|l| {
                let quoted = l.rsplit_once(" from ")?.1.trim().trim_end_matches(';');
                Some(quoted.trim_matches(|c| c == '\'' || c == '"').to_string())
            })
            .collect()
    }

    /// `./x.js` and `../x.js` relative to the directory `base` (`""` is the root).
    fn resolve(base: &str, import: &str) -> String {
        let mut dir: Vec<&str> = base.split('/').filter(|s| !s.is_empty()).collect();
        let mut rest = import;
        loop {
            if let Some(r) = rest.strip_prefix("./") {
                rest = r;
            } else if let Some(r) = rest.strip_prefix("../") {
                dir.pop();
                rest = r;
            } else {
                break;
            }
        }
        dir.push(rest);
        format!("/{}", dir.join("/"))
    }
}
