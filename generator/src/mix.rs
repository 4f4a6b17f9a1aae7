//! Which path each request goes to: weighted paths, picked at random.
//!
//! Pure: parsing a `--paths` spec and drawing from it, with its own tests.

use rand::Rng;
use rand::distr::Distribution;
use rand::distr::weighted::WeightedIndex;

/// The original generator's traffic: the five endpoints, equally likely.
pub const DEFAULT_PATHS: &str = "/ep_one,/ep_two,/ep_three,/ep_four,/error";

/// Paths with relative weights.
#[derive(Debug, Clone)]
pub struct Mix {
    paths: Vec<String>,
    index: WeightedIndex<u32>,
}

impl Mix {
    /// Parses `PATH[=WEIGHT],...`; a missing weight is 1.
    pub fn parse(spec: &str) -> Result<Self, String> {
        let mut paths = Vec::new();
        let mut weights = Vec::new();
        for item in spec.split(',').map(str::trim).filter(|s| !s.is_empty()) {
            let (path, weight) = match item.split_once('=') {
                Some((path, weight)) => {
                    let weight = weight.trim().parse::<u32>().map_err(|_| {
                        format!("weight of `{path}` must be a whole number, not `{weight}`")
                    })?;
                    (path.trim(), weight)
                }
                None => (item, 1),
            };
            if !path.starts_with('/') {
                return Err(format!("path `{path}` must start with `/`"));
            }
            if let Err(e) = path.parse::<hyper::Uri>() {
                return Err(format!("path `{path}` is not a valid request path: {e}"));
            }
            if paths.iter().any(|p| p == path) {
                return Err(format!("path `{path}` is listed twice"));
            }
            paths.push(path.to_owned());
            weights.push(weight);
        }
        if paths.is_empty() {
            return Err("no paths given".into());
        }
        let index = WeightedIndex::new(&weights)
            .map_err(|_| "at least one path needs a weight above 0".to_string())?;
        Ok(Self { paths, index })
    }

    pub fn paths(&self) -> &[String] {
        &self.paths
    }

    /// Draws a path index.
    pub fn pick(&self, rng: &mut impl Rng) -> usize {
        self.index.sample(rng)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    #[test]
    fn default_is_the_five_endpoints_equally() {
        let mix = Mix::parse(DEFAULT_PATHS).unwrap();
        assert_eq!(
            mix.paths(),
            ["/ep_one", "/ep_two", "/ep_three", "/ep_four", "/error"]
        );
    }

    #[test]
    fn weights_are_read_and_followed() {
        let mix = Mix::parse("/a=3, /b ,/c=0").unwrap();
        assert_eq!(mix.paths(), ["/a", "/b", "/c"]);
        let mut rng = StdRng::seed_from_u64(7);
        let mut counts = [0u32; 3];
        for _ in 0..40_000 {
            counts[mix.pick(&mut rng)] += 1;
        }
        assert_eq!(counts[2], 0);
        let share_a = f64::from(counts[0]) / 40_000.0;
        assert!((share_a - 0.75).abs() < 0.01, "{counts:?}");
    }

    #[test]
    fn bad_specs_say_what_is_wrong() {
        assert!(Mix::parse("").unwrap_err().contains("no paths"));
        assert!(Mix::parse("ep_one").unwrap_err().contains("start with `/`"));
        assert!(Mix::parse("/a=x").unwrap_err().contains("whole number"));
        assert!(Mix::parse("/a,/a").unwrap_err().contains("twice"));
        assert!(Mix::parse("/a=0").unwrap_err().contains("above 0"));
    }
}
