//! The MariaDB command-line client, as the benchmarks drive it: the MariaDB benchmark's
//! drain and generator (`benches/mysql.rs`), and the MariaDB profile of `text-order`
//! (`benches/text_order/`).

use super::{Result, run_with_input};

/// The MariaDB command-line client, and how it reaches the server of `--server`.
pub struct Client {
    /// `mariadb`, or `mysql` where only that name is installed.
    pub program: &'static str,
    /// The connection's options: `--host`, `--port`, `--protocol=TCP` (as tributary
    /// connects, even to `localhost`, which the client would take for the socket),
    /// `--user`, and `--skip-ssl` for `ssl-mode=DISABLED`.
    pub args: Vec<String>,
    /// The URL's password, given as `MYSQL_PWD`: never on a command line.
    password: Option<String>,
    /// What the header says about TLS.
    pub tls: String,
}

impl Client {
    pub fn new(server: &str) -> Result<Client> {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let program = ["mariadb", "mysql"]
            .into_iter()
            .find(|name| std::env::split_paths(&path).any(|dir| dir.join(name).is_file()))
            .ok_or("no `mariadb` (or `mysql`) client on PATH: `apt-get install mariadb-client`")?;
        // The URL is not repeated in errors: it may hold a password.
        let url = url::Url::parse(server).map_err(|e| format!("--server: {e}"))?;
        if !matches!(url.scheme(), "mysql" | "mariadb") {
            return Err(format!(
                "--server takes a mysql:// or mariadb:// URL, not {}://",
                url.scheme()
            ));
        }
        let decode = |s: &str| {
            percent_encoding::percent_decode_str(s)
                .decode_utf8_lossy()
                .into_owned()
        };
        let host = url.host_str().unwrap_or("localhost");
        let mut args = vec![
            format!(
                "--host={}",
                host.trim_start_matches('[').trim_end_matches(']')
            ),
            format!("--port={}", url.port().unwrap_or(3306)),
            "--protocol=TCP".to_string(),
        ];
        if !url.username().is_empty() {
            args.push(format!("--user={}", decode(url.username())));
        }
        let ssl_mode = url
            .query_pairs()
            .find(|(key, _)| key == "ssl-mode")
            .map(|(_, mode)| mode.to_ascii_uppercase())
            .unwrap_or_else(|| "PREFERRED".to_string());
        let mut client = Client {
            program,
            args,
            password: url.password().map(decode),
            tls: String::new(),
        };
        // MariaDB's client (its `ssl` option is on by default), like tributary's default
        // ssl-mode PREFERRED, encrypts when the server offers TLS; `ssl-mode=DISABLED`
        // turns it off for both. What the drain's connection got is asked, not assumed.
        if ssl_mode == "DISABLED" {
            client.args.push("--skip-ssl".to_string());
        }
        let have_ssl = client.run(None, "SHOW GLOBAL VARIABLES LIKE 'have_ssl'")?;
        let cipher = client.run(None, "SHOW SESSION STATUS LIKE 'Ssl_cipher'")?;
        client.tls = format!(
            "server have_ssl {}, ssl-mode {ssl_mode}, the client's connection {}",
            have_ssl.split_whitespace().nth(1).unwrap_or("unknown"),
            cipher.split_whitespace().nth(1).unwrap_or("plaintext")
        );
        Ok(client)
    }

    /// The environment the client needs: the password, if the URL has one.
    pub fn env(&self) -> Vec<(String, String)> {
        self.password
            .iter()
            .map(|p| ("MYSQL_PWD".to_string(), p.clone()))
            .collect()
    }

    /// Runs `sql` (one statement or a script; the client stops at the first error) in
    /// `database`, if given; returns the rows as tab-separated text, no header.
    pub fn run(&self, database: Option<&str>, sql: &str) -> Result<String> {
        let mut args = self.args.clone();
        args.extend(["--batch".to_string(), "--skip-column-names".to_string()]);
        args.extend(database.map(|d| format!("--database={d}")));
        run_with_input(self.program, &args, &self.env(), sql)
    }
}
