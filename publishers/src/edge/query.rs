//! Query strings as the routes take them: the page and `limit` of a listing, the filters a
//! route declares, and nothing else (an unknown parameter is 422, so a typo is never ignored).

use crate::edge::envelope::{ApiError, Page};
use crate::edge::router::{QueryFilter, Returns};

/// Reads `page` and `limit` from a list route's query (defaults 1 and 50, limit at most 100).
pub(crate) fn page_of(query: Option<&str>) -> Result<Page, ApiError> {
    page_and_filters(query, &[]).map(|(page, _)| page)
}

/// The filters a request gave, by name.
pub(crate) type FilterValues = Vec<(&'static str, String)>;

/// The page asked for and the values of `filters` given; any other parameter is refused.
pub(crate) fn page_and_filters(query: Option<&str>, filters: &[QueryFilter]) -> Result<(Page, FilterValues), ApiError> {
    let mut page = Page { page: 1, limit: 50 };
    let mut values = Vec::new();
    for (name, value) in query_pairs(query) {
        let value = &percent_decoded(value)
            .ok_or_else(|| ApiError::invalid(name, format!("`{name}` is not valid percent-encoded UTF-8")))?;
        let number = |max: u64| value.parse::<u64>().ok().filter(|n| (1..=max).contains(n));
        match name {
            "page" => {
                page.page = number(1_000_000).ok_or_else(|| ApiError::invalid("page", "page must be 1 to 1000000"))?
            }
            "limit" => page.limit = number(100).ok_or_else(|| ApiError::invalid("limit", "limit must be 1 to 100"))?,
            _ => {
                let Some(filter) = filters.iter().find(|f| f.name == name) else {
                    return unreachable_param(name).map(|()| (page, values));
                };
                let accepted = if filter.values.is_empty() {
                    !value.is_empty() && value.len() <= 200
                } else {
                    filter.values.contains(&value.as_str())
                };
                if !accepted {
                    let expected = if filter.values.is_empty() {
                        "1 to 200 characters".to_owned()
                    } else {
                        filter.values.join(", ")
                    };
                    return Err(ApiError::invalid(filter.name, format!("{} must be {expected}", filter.name)));
                }
                values.push((filter.name, value.clone()));
            }
        }
    }
    Ok((page, values))
}

/// Refuses query parameters a route does not take.
pub(crate) fn check_query(returns: Returns, query: Option<&str>) -> Result<(), ApiError> {
    match returns {
        Returns::List(_, filters) => page_and_filters(query, filters).map(|_| ()),
        Returns::Item(_) | Returns::Bare(_) | Returns::Document | Returns::Text(_) => match query_pairs(query).next() {
            Some((name, _)) => unreachable_param(name),
            None => Ok(()),
        },
    }
}

fn unreachable_param(name: &str) -> Result<(), ApiError> {
    Err(ApiError::invalid(name, format!("unknown query parameter `{name}`")))
}

/// A query value as sent in a URL (`%2C` is `,`, `+` a space); `None` if it is not UTF-8.
fn percent_decoded(value: &str) -> Option<String> {
    let bytes = value.as_bytes();
    let mut decoded = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => decoded.push(b' '),
            b'%' => {
                let hex = bytes.get(i + 1..i + 3).and_then(|h| std::str::from_utf8(h).ok())?;
                decoded.push(u8::from_str_radix(hex, 16).ok()?);
                i += 2;
            }
            byte => decoded.push(byte),
        }
        i += 1;
    }
    String::from_utf8(decoded).ok()
}

fn query_pairs(query: Option<&str>) -> impl Iterator<Item = (&str, &str)> {
    query.unwrap_or_default().split('&').filter(|p| !p.is_empty()).map(|p| p.split_once('=').unwrap_or((p, "")))
}
