//! The commented templates `cailloux new KIND` prints: a practitioner's starting point, with every
//! field of the format explained where it is written.

use cailloux_protocol::Kind;

const COMMON_HEAD: &str = r#"---
# Publication Cailloux (format v1). Les lignes qui commencent par # sont des commentaires.
kind: {kind}
# Titre, 250 caractères au plus.
title: "Titre à compléter"
# Résumé en quelques phrases, 2000 caractères au plus.
summary: >
  Ce que la commune a fait, pour qui, et ce qu'elle en retient.
# Langue du texte (fr, en, ...). Par défaut : fr.
language: fr
# Commune. Par défaut : celle du nœud qui publie (cailloux init --town).
# town: Ma-Commune
# Au moins un thème : energy, food, biodiversity, eco-construction, social-action, economy,
# culture, social-link, natural-environment, water, mobility, waste, participation,
# governance, education.
themes: [participation]
# Mots libres, facultatif.
tags: []
# Objectifs de développement durable de l'ONU (1 à 17), facultatif.
# sdgs: [11]
# Période : YYYY, YYYY-MM ou YYYY-MM-DD ; la fin est facultative.
# period: { start: 2024, end: 2025-06 }
# Implication des habitants : none, information, consultation, concertation, co-construction.
# participation: concertation
# Licence (identifiant SPDX). Par défaut : etalab-2.0.
licence: etalab-2.0
"#;

const EXPERIMENT: &str = r#"# Issue de l'expérience (obligatoire) : succeeded, partial, failed ou abandoned.
# Un échec est un résultat qui mérite d'être partagé.
outcome: partial
# D'où venait le besoin (facultatif) : explicit (demandé par les habitants) ou weak-signal.
# need: explicit
# Liens vers d'autres publications (facultatif) : rel = derived-from, adapts, evaluates,
# supersedes ou cites ; id = identifiant (8 caractères au moins) ou file = autre fichier publié
# dans la même commande.
# links:
#   - { rel: adapts, id: "9f2c41d7" }
---
## Contexte

## Besoin

## Démarche

## Résultats

## Enseignements
"#;

const PRACTICE: &str = r#"# Une fiche pratique devrait citer les expériences dont elle est tirée :
# links:
#   - { rel: derived-from, file: 01-mon-experience.md }
#   - { rel: derived-from, id: "9f2c41d7" }
---
## Contexte

## Pour reproduire
1. 

## Points de vigilance

## Enseignements
"#;

const EVALUATION: &str = r#"# Méthode (obligatoire) : self, peer, external, survey ou metered.
method: survey
# Indicateurs (au moins un) : name, unit et value obligatoires ; baseline, target, date et
# source facultatifs. Les nombres s'écrivent sans guillemets.
indicators:
  - { name: "Participants", unit: "personnes", value: 0, baseline: 0, target: 100, date: 2025 }
# Ce que l'évaluation mesure (obligatoire) : au moins un lien evaluates, par identifiant ou
# par fichier publié dans la même commande.
links:
  - { rel: evaluates, id: "identifiant-a-completer" }
---
## Objet

## Méthode

## Résultats

## Limites

## Enseignements
"#;

pub fn template(kind: Kind) -> String {
    let tail = match kind {
        Kind::Experiment => EXPERIMENT,
        Kind::Practice => PRACTICE,
        Kind::Evaluation => EVALUATION,
    };
    COMMON_HEAD.replace("{kind}", kind.slug()) + tail
}

#[cfg(test)]
mod tests {
    use super::*;
    use cailloux_protocol::parse_publication;

    #[test]
    fn templates_parse_once_filled() {
        for kind in [Kind::Experiment, Kind::Practice] {
            let draft = parse_publication(&template(kind), Some("Ma-Commune"));
            assert!(draft.is_ok(), "{kind}: {:?}", draft.err());
        }
        // The evaluation template names what it measures with a placeholder to replace.
        let errors = parse_publication(&template(Kind::Evaluation), Some("Ma-Commune"))
            .err()
            .unwrap_or_default();
        assert_eq!(
            errors.iter().map(|v| v.field.as_str()).collect::<Vec<_>>(),
            ["links[0].id"]
        );
    }
}
