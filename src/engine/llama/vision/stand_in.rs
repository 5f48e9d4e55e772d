//! The stand-in token an image's positions hold in a sequence's cache (see the module doc of
//! `vision`).

use llama_cpp_2::token::LlamaToken;

/// Whether `token` stands for a position of an image.
pub(crate) fn is_image_token(token: LlamaToken) -> bool {
    token.0 < 0
}

/// The stand-in token for every position of `image`: -2 and below (llama.cpp's "no token" is
/// -1), from a 64-bit FNV-1a hash of its bytes.
#[cfg_attr(not(feature = "mtmd"), allow(dead_code))]
pub(crate) fn image_token(image: &[u8]) -> LlamaToken {
    let hash = image.iter().fold(0xcbf2_9ce4_8422_2325_u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0000_0100_0000_01b3)
    });
    LlamaToken(-2 - (hash % (i32::MAX as u64 - 2)) as i32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stand_in_tokens_are_negative_and_tell_images_apart() {
        let a = image_token(b"one image");
        let b = image_token(b"another image");
        assert!(a.0 <= -2 && b.0 <= -2);
        assert_ne!(a, b);
        assert_eq!(a, image_token(b"one image"));
        assert!(is_image_token(a) && !is_image_token(LlamaToken(0)));
    }
}
