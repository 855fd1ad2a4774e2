//! A user's optional profile: the display name and email address that the OpenID Connect
//! `profile` and `email` scopes release. Both are checked the same way wherever they come
//! from (the CLI, the company user API).

use crate::ParseError;

/// The longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 200;
/// The longest email address, in bytes (RFC 5321 §4.5.3.1.3 bounds a path at 256 octets,
/// including the angle brackets).
pub const MAX_EMAIL_BYTES: usize = 254;

/// A display name: 1 to [`MAX_NAME_CHARS`] characters, no control characters, no leading
/// or trailing whitespace.
pub fn check_name(name: &str) -> Result<&str, ParseError> {
    let refuse = |why: &str| Err(ParseError::new("name", why.to_owned()));
    if name.is_empty() {
        return refuse("the name is empty");
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return refuse("the name is longer than 200 characters");
    }
    if name.chars().any(char::is_control) {
        return refuse("the name contains a control character");
    }
    if name.trim() != name {
        return refuse("the name starts or ends with whitespace");
    }
    Ok(name)
}

/// An email address, checked for shape only (it is never verified): one `@` with
/// something on each side, a dot in the domain, no whitespace or control characters, at
/// most [`MAX_EMAIL_BYTES`] bytes.
pub fn check_email(email: &str) -> Result<&str, ParseError> {
    let refuse = |why: &str| Err(ParseError::new("email", why.to_owned()));
    if email.len() > MAX_EMAIL_BYTES {
        return refuse("the email address is longer than 254 bytes");
    }
    if email.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return refuse("the email address contains whitespace or a control character");
    }
    let Some((local, domain)) = email.rsplit_once('@') else {
        return refuse("the email address has no @");
    };
    if local.is_empty() || local.contains('@') {
        return refuse("the email address needs exactly one @ with a name before it");
    }
    let labels_ok = domain.contains('.')
        && domain
            .split('.')
            .all(|label| !label.is_empty() && !label.starts_with('-') && !label.ends_with('-'));
    if !labels_ok {
        return refuse("the email address's domain is not a domain name");
    }
    Ok(email)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_refused_empty_padded_overlong_or_with_control_characters() {
        assert_eq!(check_name("Ada Lovelace").ok(), Some("Ada Lovelace"));
        assert_eq!(check_name("Zoë Ødegård").ok(), Some("Zoë Ødegård"));
        assert!(check_name(&"é".repeat(200)).is_ok());
        for bad in ["", " Ada", "Ada ", "Ada\nLovelace", "Ada\u{0}"] {
            assert!(check_name(bad).is_err(), "{bad:?} was accepted");
        }
        assert!(check_name(&"é".repeat(201)).is_err());
    }

    #[test]
    fn email_addresses_need_one_at_and_a_domain_name() {
        for good in ["ada@example.com", "a.b+tag@mail.example.org"] {
            assert_eq!(check_email(good).ok(), Some(good));
        }
        for bad in [
            "",
            "ada",
            "@example.com",
            "ada@",
            "ada@localhost",
            "ada@@example.com",
            "a@b@example.com",
            "ada @example.com",
            "ada@example..com",
            "ada@-example.com",
            "ada@example.com\n",
        ] {
            assert!(check_email(bad).is_err(), "{bad:?} was accepted");
        }
        let long = format!("{}@example.com", "a".repeat(250));
        assert!(check_email(&long).is_err());
    }
}
