//! A bare actix-web handler for `scripts/bench-floor`: every GET answers the bytes of the file
//! given as the first argument (one order's JSON), as `application/json`. The same actix-web
//! as the service, two workers, no middleware: the floor of actix-web on this machine.
//!
//! Usage: `bench-floor-actix FILE [ADDR]` (ADDR `127.0.0.1:0` by default); prints
//! `listening on ADDR` once bound.

use actix_web::{App, HttpResponse, HttpServer, web};

#[actix_web::main]
async fn main() -> std::io::Result<()> {
    let mut args = std::env::args().skip(1);
    let file = args.next().expect("usage: bench-floor-actix FILE [ADDR]");
    let addr = args.next().unwrap_or_else(|| "127.0.0.1:0".into());
    let body = web::Bytes::from(std::fs::read(&file)?);
    let server = HttpServer::new(move || {
        let body = body.clone();
        App::new().default_service(web::get().to(move || {
            let body = body.clone();
            async move {
                HttpResponse::Ok()
                    .content_type("application/json")
                    .body(body)
            }
        }))
    })
    .workers(2)
    .bind(&addr)?;
    println!("listening on {}", server.addrs()[0]);
    server.run().await
}
