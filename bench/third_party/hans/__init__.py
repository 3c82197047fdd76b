"""HANS's template generator (McCoy, Pavlick and Linzen, ACL 2019, github.com/tommccoy1/hans, MIT licence in
LICENSE.md), from which bench/pipeline/ood.py regenerates the HANS evaluation set: its data files are not in
the repository snapshot we can reach."""
