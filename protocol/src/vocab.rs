//! The closed vocabularies of the publication format: kinds, themes, outcomes and the other
//! enumerations of `record-format.md`, with their slugs, their French labels, and the
//! "did you mean" suggestion that turns a typo into an actionable error.

use serde::{Deserialize, Serialize};

/// What every closed vocabulary offers, for code that parses any of them.
pub trait Vocabulary: Sized + Copy {
    /// What a value is called in error messages.
    const WHAT: &'static str;
    fn from_slug(slug: &str) -> Option<Self>;
    fn slugs() -> Vec<&'static str>;
    fn suggest(input: &str) -> Option<&'static str>;
}

/// Declares a closed vocabulary: a `Copy` enum serialised as its slug, with its French label.
macro_rules! vocabulary {
    ($(#[$meta:meta])* $name:ident, $what:literal { $($variant:ident => $slug:literal, $label:literal;)+ }) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum $name {
            $(#[serde(rename = $slug)] $variant,)+
        }

        impl $name {
            /// Every value, in the order of the format's table.
            pub const ALL: &'static [$name] = &[$($name::$variant,)+];

            /// The slug written in front matter and in every encoding.
            pub fn slug(self) -> &'static str {
                match self { $($name::$variant => $slug,)+ }
            }

            /// The label a French-speaking reader sees.
            pub fn label_fr(self) -> &'static str {
                match self { $($name::$variant => $label,)+ }
            }

            /// The value with this exact slug.
            pub fn from_slug(slug: &str) -> Option<Self> {
                match slug { $($slug => Some($name::$variant),)+ _ => None }
            }

            /// Every slug, for error messages.
            pub fn slugs() -> Vec<&'static str> {
                Self::ALL.iter().map(|v| v.slug()).collect()
            }

            /// The nearest slug to a misspelt one, if one is near enough to be a likely typo.
            pub fn suggest(input: &str) -> Option<&'static str> {
                nearest(input, Self::ALL.iter().map(|v| v.slug()))
            }
        }

        impl Vocabulary for $name {
            const WHAT: &'static str = $what;
            fn from_slug(slug: &str) -> Option<Self> { $name::from_slug(slug) }
            fn slugs() -> Vec<&'static str> { $name::slugs() }
            fn suggest(input: &str) -> Option<&'static str> { $name::suggest(input) }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.slug())
            }
        }
    };
}

vocabulary!(
    /// What a publication is.
    Kind, "kind" {
        Experiment => "experiment", "retour d'expérience";
        Practice => "practice", "fiche pratique";
        Evaluation => "evaluation", "résultat d'évaluation";
    }
);

vocabulary!(
    /// The theme vocabulary.
    Theme, "theme" {
        Energy => "energy", "transition énergétique";
        Food => "food", "système alimentaire";
        Biodiversity => "biodiversity", "biodiversité";
        EcoConstruction => "eco-construction", "éco-construction";
        SocialAction => "social-action", "action sociale";
        Economy => "economy", "développement économique";
        Culture => "culture", "culture";
        SocialLink => "social-link", "lien social";
        NaturalEnvironment => "natural-environment", "milieu naturel";
        Water => "water", "eau";
        Mobility => "mobility", "mobilité";
        Waste => "waste", "déchets et économie circulaire";
        Participation => "participation", "implication des habitants (habitant-acteur)";
        Governance => "governance", "gouvernance et conduite du changement";
        Education => "education", "éducation et jeunesse";
    }
);

vocabulary!(
    /// How an experiment ended. A failed experiment is a result worth sharing.
    Outcome, "outcome" {
        Succeeded => "succeeded", "réussie";
        Partial => "partial", "réussie en partie";
        Failed => "failed", "échouée";
        Abandoned => "abandoned", "abandonnée";
    }
);

vocabulary!(
    /// Where the need behind an experiment came from.
    Need, "need" {
        Explicit => "explicit", "demande des habitants";
        WeakSignal => "weak-signal", "signal faible";
    }
);

vocabulary!(
    /// How an evaluation was made.
    Method, "method" {
        SelfAssessment => "self", "auto-évaluation";
        Peer => "peer", "évaluation par les pairs";
        External => "external", "évaluation externe";
        Survey => "survey", "enquête";
        Metered => "metered", "mesure";
    }
);

vocabulary!(
    /// How far residents took part.
    Participation, "participation level" {
        None => "none", "aucune";
        Information => "information", "information";
        Consultation => "consultation", "consultation";
        Concertation => "concertation", "concertation";
        CoConstruction => "co-construction", "co-construction";
    }
);

vocabulary!(
    /// How one record relates to another.
    LinkRel, "link rel" {
        DerivedFrom => "derived-from", "tirée de";
        Adapts => "adapts", "adapte";
        Evaluates => "evaluates", "évalue";
        Supersedes => "supersedes", "remplace";
        Cites => "cites", "cite";
    }
);

/// The candidate nearest to `input` by edit distance over case- and accent-folded text, when
/// it is close enough to be a typo (edits to at most two fifths of the word, and 2 edits always
/// allowed).
pub fn nearest<'a>(input: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    let folded = fold(input);
    let limit = (folded.chars().count() * 2 / 5).max(2);
    candidates
        .into_iter()
        .map(|c| (edit_distance(&folded, &fold(c)), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Lower-cases and strips the diacritics of Latin letters, so that `Énergie` and `energie`
/// compare equal. Used for suggestions and for matching town names typed by a person.
pub fn fold(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars().flat_map(char::to_lowercase) {
        match c {
            'à' | 'á' | 'â' | 'ã' | 'ä' | 'å' | 'ā' | 'ă' | 'ą' => out.push('a'),
            'ç' | 'ć' | 'č' => out.push('c'),
            'ď' | 'đ' => out.push('d'),
            'è' | 'é' | 'ê' | 'ë' | 'ē' | 'ė' | 'ę' | 'ě' => out.push('e'),
            'ì' | 'í' | 'î' | 'ï' | 'ī' | 'į' => out.push('i'),
            'ł' | 'ľ' | 'ĺ' => out.push('l'),
            'ñ' | 'ń' | 'ň' => out.push('n'),
            'ò' | 'ó' | 'ô' | 'õ' | 'ö' | 'ø' | 'ō' | 'ő' => out.push('o'),
            'ŕ' | 'ř' => out.push('r'),
            'ś' | 'š' | 'ş' => out.push('s'),
            'ť' | 'ţ' => out.push('t'),
            'ù' | 'ú' | 'û' | 'ü' | 'ū' | 'ů' | 'ű' => out.push('u'),
            'ý' | 'ÿ' => out.push('y'),
            'ź' | 'ż' | 'ž' => out.push('z'),
            'æ' => out.push_str("ae"),
            'œ' => out.push_str("oe"),
            'ß' => out.push_str("ss"),
            c => out.push(c),
        }
    }
    out
}

/// Levenshtein distance, in characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let substitution = prev[j] + usize::from(ca != *cb);
            cur[j + 1] = substitution.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn suggests_the_nearest_theme() {
        assert_eq!(Theme::suggest("energie"), Some("energy"));
        assert_eq!(Theme::suggest("Énergie"), Some("energy"));
        assert_eq!(Theme::suggest("biodiversité"), Some("biodiversity"));
        assert_eq!(Theme::suggest("social_link"), Some("social-link"));
        assert_eq!(Theme::suggest("astronomy"), None);
        assert_eq!(Kind::suggest("experience"), Some("experiment"));
        assert_eq!(Kind::suggest("experiance"), Some("experiment"));
        assert_eq!(Kind::suggest("poem"), None);
    }

    #[test]
    fn slugs_round_trip() {
        for t in Theme::ALL {
            assert_eq!(Theme::from_slug(t.slug()), Some(*t));
        }
        assert_eq!(Method::SelfAssessment.slug(), "self");
    }

    #[test]
    fn folds_accents_and_case() {
        assert_eq!(
            fold("Mouans-Sartoux Œuvre Été"),
            "mouans-sartoux oeuvre ete"
        );
    }
}
