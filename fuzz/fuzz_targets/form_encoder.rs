#![no_main]
//! Any keys and values: the encoding is plain ASCII of the allowed characters.
use kavachos_stripe::stripe::FormBody;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut form = FormBody::new();
    for pair in text.split('&') {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        form.push(key, value);
    }
    let encoded = form.encode();
    assert!(encoded.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_.~%&=[]".contains(&b)));
});
