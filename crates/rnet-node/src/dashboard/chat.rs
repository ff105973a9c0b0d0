//! `/chat`: a playground that talks to the tip model through the node's OpenAI-compatible API
//! (`-inference`). The page's small script posts to `/chat/completions` on the dashboard, which
//! forwards the request to the inference server's `/v1/chat/completions` (so the browser needs
//! no cross-origin access to it) with `stream` off and `max_tokens` bounded. `/chat?q=TEXT`
//! sends `TEXT` as soon as the page loads. Without `-inference` the page says so and the proxy
//! answers 503.

use std::time::Duration;

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use rnet_inference::server::DEFAULT_MODEL_ID;
use serde_json::{Value, json};

use super::html::{self, Nav, escape};
use super::http_client::post_json;
use super::source::Source;

/// Largest request body the proxy accepts.
pub const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// Largest reply read from the inference server.
pub const MAX_REPLY_BYTES: usize = 1024 * 1024;

/// Most bytes one playground request may generate.
pub const MAX_TOKENS: u64 = 512;

/// Bytes generated when the request does not say.
pub const DEFAULT_MAX_TOKENS: u64 = 120;

/// How long a proxied request may take.
pub const PROXY_TIMEOUT: Duration = Duration::from_secs(120);

const SCRIPT: &str = r#"<script>
(function(){
  var form=document.getElementById('chat'),q=document.getElementById('q'),out=document.getElementById('reply');
  function send(){
    out.dataset.state='waiting';out.textContent='…';
    fetch('/chat/completions',{method:'POST',headers:{'Content-Type':'application/json'},
      body:JSON.stringify({model:form.dataset.model,messages:[{role:'user',content:q.value}],
        max_tokens:parseInt(document.getElementById('max').value,10)||120,temperature:0.8})})
    .then(function(r){return r.json().then(function(j){return {ok:r.ok,j:j};});})
    .then(function(x){
      if(!x.ok||!x.j.choices){out.dataset.state='error';
        out.textContent='error: '+((x.j.error&&x.j.error.message)||'no reply');return;}
      out.textContent=x.j.choices[0].message.content;out.dataset.state='done';})
    .catch(function(e){out.dataset.state='error';out.textContent='error: '+e;});
  }
  form.addEventListener('submit',function(e){e.preventDefault();send();});
  var p=new URLSearchParams(location.search).get('q');
  if(p){q.value=p;send();}
})();
</script>"#;

/// The playground page.
pub async fn page(State(source): State<Source>) -> Html<String> {
    let body = match (source.inference, source.inference_addr()) {
        (None, _) => "<h1>Chat with the tip model</h1><p class=\"err\" id=\"inference-off\">The inference \
             server is off: start <code>rnetd</code> with <code>-inference</code> to chat with the tip model \
             here.</p>"
            .to_string(),
        (Some(_), None) => "<h1>Chat with the tip model</h1><p class=\"err\" id=\"inference-off\">The inference \
             server has not started yet (it loads the tip model first); reload in a moment.</p>"
            .to_string(),
        (Some(_), Some(addr)) => format!(
            "<h1>Chat with the tip model</h1>\
             <p class=\"note\">The node serves the tip model over its OpenAI-compatible API at \
             <code id=\"inference-addr\">http://{addr}/v1</code> (model <code>{model}</code>); this page \
             forwards to its <code>/v1/chat/completions</code>. Tokens are bytes; a small young model \
             babbles.</p>\
             <form id=\"chat\" data-model=\"{model}\"><textarea id=\"q\" rows=\"3\" name=\"q\" \
             placeholder=\"Ge1:1 In the\"></textarea><p>Max bytes <input id=\"max\" type=\"number\" min=\"1\" \
             max=\"{MAX_TOKENS}\" value=\"{DEFAULT_MAX_TOKENS}\"> <button type=\"submit\">Send</button></p></form>\
             <h2>Reply</h2><div id=\"reply\" data-state=\"idle\"></div>{SCRIPT}",
            addr = escape(&addr.to_string()),
            model = escape(DEFAULT_MODEL_ID),
        ),
    };
    Html(html::page("Chat", Nav::Chat, &body, false, false))
}

/// An OpenAI-shaped error reply.
fn error(status: StatusCode, message: &str) -> Response {
    let body = json!({ "error": { "message": message, "type": "dashboard_proxy", "param": null, "code": null } });
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// The request forwarded for `body`: a JSON object with `stream` off and `max_tokens` at most
/// [`MAX_TOKENS`] ([`DEFAULT_MAX_TOKENS`] when absent); `Err` with the reason otherwise.
pub fn forwarded_request(body: &[u8]) -> Result<Vec<u8>, String> {
    let mut request: Value =
        serde_json::from_slice(body).map_err(|e| format!("the body is not JSON: {e}"))?;
    let object = request.as_object_mut().ok_or("the body must be a JSON object")?;
    object.insert("stream".into(), Value::Bool(false));
    let max = object.get("max_tokens").and_then(Value::as_u64).unwrap_or(DEFAULT_MAX_TOKENS);
    object.insert("max_tokens".into(), json!(max.clamp(1, MAX_TOKENS)));
    object.entry("model").or_insert_with(|| json!(DEFAULT_MODEL_ID));
    serde_json::to_vec(&request).map_err(|e| e.to_string())
}

/// `POST /chat/completions`: forwards to the inference server.
pub async fn proxy(State(source): State<Source>, body: Bytes) -> Response {
    let Some(addr) = source.inference_addr() else {
        let why = if source.inference.is_none() {
            "the inference server is off (start rnetd with -inference)"
        } else {
            "the inference server has not started yet"
        };
        return error(StatusCode::SERVICE_UNAVAILABLE, why);
    };
    if body.len() > MAX_REQUEST_BYTES {
        return error(StatusCode::PAYLOAD_TOO_LARGE, "request too large");
    }
    let request = match forwarded_request(&body) {
        Ok(r) => r,
        Err(why) => return error(StatusCode::BAD_REQUEST, &why),
    };
    match post_json(addr, "/v1/chat/completions", &request, PROXY_TIMEOUT, MAX_REPLY_BYTES).await {
        Ok(reply) => {
            let status = StatusCode::from_u16(reply.status).unwrap_or(StatusCode::BAD_GATEWAY);
            (status, [(header::CONTENT_TYPE, "application/json")], reply.body).into_response()
        }
        Err(e) => error(StatusCode::BAD_GATEWAY, &format!("inference server: {e}")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_forwarded_request_is_bounded_and_not_streamed() {
        let r: Value = serde_json::from_slice(
            &forwarded_request(br#"{"messages":[{"role":"user","content":"hi"}],"stream":true,"max_tokens":100000}"#)
                .unwrap(),
        )
        .unwrap();
        assert_eq!(r["stream"], json!(false));
        assert_eq!(r["max_tokens"], json!(MAX_TOKENS));
        assert_eq!(r["model"], json!(DEFAULT_MODEL_ID));
        let r: Value =
            serde_json::from_slice(&forwarded_request(br#"{"model":"m"}"#).unwrap()).unwrap();
        assert_eq!(
            (r["max_tokens"].clone(), r["model"].clone()),
            (json!(DEFAULT_MAX_TOKENS), json!("m"))
        );
        assert!(forwarded_request(b"[1]").is_err());
        assert!(forwarded_request(b"not json").is_err());
    }
}
