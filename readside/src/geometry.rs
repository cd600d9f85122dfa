//! Places on the Earth: distances, the box around a circle, and whether a point is inside a
//! zone. Everything works on the sphere, so nothing breaks where longitudes wrap (the
//! antimeridian) or converge (the poles), as flat latitude/longitude arithmetic does.

use schemas::vehicles::Position;

/// Mean Earth radius, metres (IUGG).
pub const EARTH_RADIUS_M: f64 = 6_371_008.8;

/// Great-circle distance (haversine).
pub fn metres_between(a: Position, b: Position) -> f64 {
    let (lat1, lat2) = (a.latitude.to_radians(), b.latitude.to_radians());
    let dlat = lat2 - lat1;
    let dlon = (b.longitude - a.longitude).to_radians();
    let h = (dlat / 2.0).sin().powi(2) + lat1.cos() * lat2.cos() * (dlon / 2.0).sin().powi(2);
    2.0 * EARTH_RADIUS_M * h.sqrt().min(1.0).asin()
}

/// A latitude/longitude box, for a database to narrow a search before the exact test.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Bounds {
    /// Southern edge, degrees.
    pub south: f64,
    /// Northern edge, degrees.
    pub north: f64,
    /// Longitudes covered: `None` for all of them (the box holds a pole); west > east when the
    /// box crosses the antimeridian.
    pub longitudes: Option<(f64, f64)>,
}

/// Brings a longitude into [-180, 180].
fn wrapped(longitude: f64) -> f64 {
    let l = (longitude + 180.0).rem_euclid(360.0) - 180.0;
    if l == -180.0 && longitude > 0.0 { 180.0 } else { l }
}

/// The smallest box holding every point within `radius_m` of `centre`.
pub fn bounds_around(centre: Position, radius_m: f64) -> Bounds {
    let angular = (radius_m / EARTH_RADIUS_M).to_degrees();
    let (south, north) = (centre.latitude - angular, centre.latitude + angular);
    if south <= -90.0 || north >= 90.0 {
        // The circle holds a pole: every longitude is in it.
        return Bounds { south: south.max(-90.0), north: north.min(90.0), longitudes: None };
    }
    // The widest longitude span of the circle (at its tangent latitude).
    let lat = centre.latitude.to_radians();
    let ratio = (radius_m / EARTH_RADIUS_M).sin() / lat.cos();
    if ratio >= 1.0 {
        return Bounds { south, north, longitudes: None };
    }
    let span = ratio.asin().to_degrees();
    Bounds { south, north, longitudes: Some((wrapped(centre.longitude - span), wrapped(centre.longitude + span))) }
}

/// A unit vector from the Earth's centre.
fn vector(p: Position) -> [f64; 3] {
    let (lat, lon) = (p.latitude.to_radians(), p.longitude.to_radians());
    [lat.cos() * lon.cos(), lat.cos() * lon.sin(), lat.sin()]
}

fn cross(a: [f64; 3], b: [f64; 3]) -> [f64; 3] {
    [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
}

fn dot(a: [f64; 3], b: [f64; 3]) -> f64 {
    a[0] * b[0] + a[1] * b[1] + a[2] * b[2]
}

/// Whether `point` is inside the ring `ring` (`[longitude, latitude]` points, great-circle
/// edges): the ring winds once around an inside point and not at all around an outside one.
/// The winding is summed on the sphere, so a ring across the antimeridian or around a pole is
/// no different from any other. A ring is the smaller of the two areas it bounds.
pub fn contains(ring: &[[f64; 2]], point: Position) -> bool {
    let p = vector(point);
    let corners: Vec<[f64; 3]> = ring
        .iter()
        .map(|[longitude, latitude]| vector(Position { latitude: *latitude, longitude: *longitude }))
        .collect();
    if corners.len() < 3 {
        return false;
    }
    let mut winding = 0.0;
    for (i, a) in corners.iter().enumerate() {
        let b = corners[(i + 1) % corners.len()];
        // The turn, seen from the point, from the plane through it and `a` to the one through it and `b`.
        let (pa, pb) = (cross(p, *a), cross(p, b));
        winding += dot(cross(pa, pb), p).atan2(dot(pa, pb));
    }
    winding.abs() > std::f64::consts::PI
}

/// The box around a ring, for the database's first cut; `None` for longitudes when the ring
/// goes around a pole.
pub fn bounds_of(ring: &[[f64; 2]]) -> Bounds {
    let south = ring.iter().map(|p| p[1]).fold(f64::INFINITY, f64::min);
    let north = ring.iter().map(|p| p[1]).fold(f64::NEG_INFINITY, f64::max);
    // Walk the edges with longitudes unwrapped (no jump over 180°): the total turn says whether
    // the ring goes around a pole, the unwrapped extremes give the span otherwise.
    let (mut longitude, mut west, mut east) = (ring[0][0], ring[0][0], ring[0][0]);
    for window in ring.windows(2).chain(std::iter::once(&[ring[ring.len() - 1], ring[0]][..])) {
        let mut step = window[1][0] - window[0][0];
        if step > 180.0 {
            step -= 360.0;
        } else if step < -180.0 {
            step += 360.0;
        }
        longitude += step;
        west = west.min(longitude);
        east = east.max(longitude);
    }
    let around_a_pole = (longitude - ring[0][0]).abs() > 180.0;
    if around_a_pole {
        // The pole the ring goes around is inside it.
        let (south, north) = if north > 0.0 { (south, 90.0) } else { (-90.0, north) };
        return Bounds { south, north, longitudes: None };
    }
    if east - west >= 360.0 {
        return Bounds { south, north, longitudes: None };
    }
    Bounds { south, north, longitudes: Some((wrapped(west), wrapped(east))) }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(latitude: f64, longitude: f64) -> Position {
        Position { latitude, longitude }
    }

    #[test]
    fn distances_hold_across_the_antimeridian_and_at_the_poles() {
        // 0.002° of longitude at the equator is about 222 m, whichever side of 180° each is on.
        let across = metres_between(at(0.0, 179.999), at(0.0, -179.999));
        assert!((across - 222.4).abs() < 1.0, "{across}");
        // At the pole every longitude is the same place.
        assert!(metres_between(at(90.0, 0.0), at(90.0, 120.0)) < 0.001);
        // One degree of latitude is about 111.2 km.
        assert!((metres_between(at(10.0, 5.0), at(11.0, 5.0)) - 111_195.0).abs() < 10.0);
    }

    #[test]
    fn a_square_holds_its_inside_only() {
        let square = [[13.0, 52.0], [14.0, 52.0], [14.0, 53.0], [13.0, 53.0], [13.0, 52.0]];
        assert!(contains(&square, at(52.5, 13.5)));
        assert!(!contains(&square, at(52.5, 14.5)));
        assert!(!contains(&square, at(-52.5, 13.5)), "not its mirror image");
        let bounds = bounds_of(&square);
        assert_eq!((bounds.south, bounds.north, bounds.longitudes), (52.0, 53.0, Some((13.0, 14.0))));
    }

    #[test]
    fn a_zone_across_the_antimeridian() {
        let fiji = [[179.0, -17.0], [-179.0, -17.0], [-179.0, -16.0], [179.0, -16.0]];
        assert!(contains(&fiji, at(-16.5, 179.9)));
        assert!(contains(&fiji, at(-16.5, -179.9)));
        assert!(!contains(&fiji, at(-16.5, 0.0)), "not the rest of the world");
        assert!(!contains(&fiji, at(-16.5, 178.5)));
        assert_eq!(bounds_of(&fiji).longitudes, Some((179.0, -179.0)));
    }

    #[test]
    fn a_zone_around_a_pole() {
        let arctic: Vec<[f64; 2]> = (0..12).map(|i| [-180.0 + 30.0 * f64::from(i), 85.0]).collect();
        assert!(contains(&arctic, at(89.9, 45.0)));
        assert!(contains(&arctic, at(90.0, 0.0)));
        assert!(!contains(&arctic, at(80.0, 45.0)));
        let bounds = bounds_of(&arctic);
        assert_eq!((bounds.north, bounds.longitudes), (90.0, None));
    }

    #[test]
    fn boxes_around_circles_wrap_and_open_up() {
        let normal = bounds_around(at(52.5, 13.4), 1_000.0);
        let (west, east) = normal.longitudes.unwrap();
        assert!(west < 13.4 && 13.4 < east && east - west < 0.05);
        let across = bounds_around(at(0.0, 179.999), 1_000.0);
        let (west, east) = across.longitudes.unwrap();
        assert!(west > 179.9 && east < -179.9, "{west} {east}");
        assert_eq!(bounds_around(at(89.999, 0.0), 1_000.0).longitudes, None, "a circle over the pole");
    }
}
