//! Passwords out of every database address the service prints: a URL's userinfo
//! (`postgres://u:pw@h/db`), its `password=` (and `sslpassword=`) query parameters, and the
//! same keys in libpq's key-value form (`host=h password='p w'`), quoting rules included.
//!
//! Where a string is ambiguous (a password with an unencoded `?`, `&` or `@`, an unterminated
//! quote), more is hidden rather than less: a log line that says too little can be fixed by
//! reading the configuration; a password in a log cannot be taken back.

use percent_encoding::percent_decode_str;

/// What every hidden secret is replaced with.
const HIDDEN: &str = "***";

/// Keys whose values are secrets (libpq's names; the comparison ignores ASCII case).
const SECRET_KEYS: &[&str] = &["password", "sslpassword"];

fn is_secret(key: &str) -> bool {
    let key = percent_decode_str(key.trim()).decode_utf8_lossy();
    SECRET_KEYS.iter().any(|k| key.eq_ignore_ascii_case(k))
}

/// `conninfo` with every password form replaced by `***`, for logs and error messages.
pub fn redact(conninfo: &str) -> String {
    match conninfo.split_once("://") {
        Some((scheme, rest)) => format!("{scheme}://{}", redact_url_rest(rest)),
        None => redact_key_values(conninfo),
    }
}

/// Everything after `scheme://`: `[userinfo@]hosts[/db][?query]`.
fn redact_url_rest(rest: &str) -> String {
    // The userinfo ends at the last `@` before the query. A password holding an unencoded
    // `?` puts that `@` after the first `?`; when an `@` there follows a `:`, it is taken
    // as the userinfo's end too (a query value holding an `@` then hides the host as well).
    let query_start = rest.find('?').unwrap_or(rest.len());
    let at = rest[..query_start]
        .rfind('@')
        .or_else(|| rest.rfind('@').filter(|&i| rest[..i].contains(':')));
    let (userinfo, after) = match at {
        Some(i) => (Some(&rest[..i]), &rest[i + 1..]),
        None => (None, rest),
    };
    let mut out = String::with_capacity(rest.len());
    if let Some(userinfo) = userinfo {
        match userinfo.split_once(':') {
            Some((user, _)) => {
                out.push_str(user);
                out.push(':');
                out.push_str(HIDDEN);
            }
            None => out.push_str(userinfo),
        }
        out.push('@');
    }
    match after.split_once('?') {
        Some((path, query)) => {
            out.push_str(path);
            out.push('?');
            out.push_str(&redact_query(query));
        }
        None => out.push_str(after),
    }
    out
}

/// `a=1&password=x&b=2` → `a=1&password=***&b=2` (a fragment after `#` is kept as text).
fn redact_query(query: &str) -> String {
    query
        .split('&')
        .map(|pair| match pair.split_once('=') {
            Some((key, _)) if is_secret(key) => format!("{key}={HIDDEN}"),
            _ => pair.to_string(),
        })
        .collect::<Vec<_>>()
        .join("&")
}

/// libpq's `key = value` form: values are bare (up to white space, `\` escaping the next
/// character) or single-quoted (`\'` and `\\` escaped). Only secret values change; an
/// unterminated quoted secret hides the rest of the string.
fn redact_key_values(conninfo: &str) -> String {
    let bytes = conninfo.as_bytes();
    let mut out = String::with_capacity(conninfo.len());
    let mut i = 0;
    while i < bytes.len() {
        // White space between pairs, copied.
        let start = i;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        out.push_str(&conninfo[start..i]);
        if i == bytes.len() {
            break;
        }
        // The key, up to `=` or white space.
        let key_start = i;
        while i < bytes.len() && bytes[i] != b'=' && !bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        let key = &conninfo[key_start..i];
        // White space and the `=`, copied.
        let sep_start = i;
        while i < bytes.len() && bytes[i].is_ascii_whitespace() {
            i += 1;
        }
        if i < bytes.len() && bytes[i] == b'=' {
            i += 1;
            while i < bytes.len() && bytes[i].is_ascii_whitespace() {
                i += 1;
            }
        } else {
            // Not `key=value`: libpq refuses it; keep the word, but never a secret's value.
            out.push_str(key);
            if is_secret(key) {
                out.push_str(HIDDEN);
                return out;
            }
            out.push_str(&conninfo[sep_start..i]);
            continue;
        }
        out.push_str(key);
        out.push_str(&conninfo[sep_start..i]);
        // The value.
        let value_start = i;
        let mut terminated = true;
        if i < bytes.len() && bytes[i] == b'\'' {
            i += 1;
            terminated = false;
            while i < bytes.len() {
                match bytes[i] {
                    b'\\' => i += 2,
                    b'\'' => {
                        i += 1;
                        terminated = true;
                        break;
                    }
                    _ => i += 1,
                }
            }
        } else {
            while i < bytes.len() && !bytes[i].is_ascii_whitespace() {
                i += if bytes[i] == b'\\' { 2 } else { 1 };
            }
        }
        let i_end = i.min(bytes.len());
        if is_secret(key) {
            out.push_str(HIDDEN);
            if !terminated {
                return out;
            }
        } else {
            out.push_str(&conninfo[value_start..i_end]);
        }
        i = i_end;
    }
    out
}

#[cfg(test)]
mod tests {
    use super::redact;

    const SECRET: &str = "s3cr3t";

    fn hides(input: &str, expected: &str) {
        let shown = redact(input);
        assert_eq!(shown, expected, "{input}");
        assert!(!shown.contains(SECRET), "{input} → {shown}");
    }

    #[test]
    fn a_url_password_in_the_userinfo_is_hidden() {
        hides(
            "postgres://app:s3cr3t@db:5432/orders?sslmode=require",
            "postgres://app:***@db:5432/orders?sslmode=require",
        );
        hides(
            "postgresql://app:s3cr3t@h1:5432,h2:5433/orders?target_session_attrs=read-write",
            "postgresql://app:***@h1:5432,h2:5433/orders?target_session_attrs=read-write",
        );
        // Unencoded `@`, `/` and `?` inside the password.
        hides(
            "postgres://app:p@s/s3cr3t@db/orders",
            "postgres://app:***@db/orders",
        );
        hides(
            "postgres://app:a?s3cr3t@db/orders",
            "postgres://app:***@db/orders",
        );
        // No password: nothing to hide.
        assert_eq!(redact("postgres://db/orders"), "postgres://db/orders");
        assert_eq!(
            redact("postgres://app@db/orders"),
            "postgres://app@db/orders"
        );
    }

    #[test]
    fn a_password_query_parameter_is_hidden() {
        hides(
            "postgres://app@db/orders?password=s3cr3t",
            "postgres://app@db/orders?password=***",
        );
        hides(
            "postgres://app@db/orders?sslmode=require&PassWord=s3cr3t&application_name=x",
            "postgres://app@db/orders?sslmode=require&PassWord=***&application_name=x",
        );
        hides(
            "postgres://app@db/orders?pass%77ord=s3cr3t",
            "postgres://app@db/orders?pass%77ord=***",
        );
        hides(
            "postgres://app@db/orders?sslpassword=s3cr3t",
            "postgres://app@db/orders?sslpassword=***",
        );
        hides(
            "postgres://app:s3cr3t@db/orders?password=s3cr3t",
            "postgres://app:***@db/orders?password=***",
        );
        // A query value holding an `@` after a port: more is hidden, never less.
        let shown = redact("postgres://db:5432/orders?application_name=a@b");
        assert!(!shown.contains("5432/orders?application_name=a"), "{shown}");
    }

    #[test]
    fn a_key_value_password_is_hidden_with_libpq_quoting() {
        hides(
            "host=db user=app password=s3cr3t dbname=orders",
            "host=db user=app password=*** dbname=orders",
        );
        hides(
            "host=db password = 's3cr3t with spaces' dbname=orders",
            "host=db password = *** dbname=orders",
        );
        hides(
            r"host=db password='it\'s s3cr3t \\' dbname=orders",
            "host=db password=*** dbname=orders",
        );
        hides(r"password=s3\ cr3t host=db", "password=*** host=db");
        hides("  PASSWORD=s3cr3t", "  PASSWORD=***");
        // Unterminated quote, or a key without `=`: the rest is hidden.
        hides(
            "host=db password='s3cr3t dbname=orders",
            "host=db password=***",
        );
        hides("host=db password s3cr3t", "host=db password***");
        assert_eq!(
            redact("host=db user='a b' dbname=orders"),
            "host=db user='a b' dbname=orders"
        );
    }
}
