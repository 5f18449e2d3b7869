"""Chef and Puppet importers: common properties translated, the rest named with lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from shipmate.importers import translate_file, translate_text
from shipmate.spec.container import Mount, PortMapping
from shipmate.spec.manifest import parse_manifest

EXAMPLES = Path(__file__).parents[3] / "examples" / "manifests"

CHEF = """\
include_recipe 'docker'
docker_image 'example/app' do
  tag '2.0'
  source '/srv/app'
  action :build_if_missing
end
docker_container 'app' do
  repo 'example/app'
  tag '2.0'
  port ['80:8000', '443:8443']
  env ['NODE_PORT=8000', 'MODE=prod']
  volumes ['/srv/data:/data', '/anon']
  command 'node server.js --port 8000'
  restart_policy 'always'
  links ['db:db']
  hostname node['hostname']
  if node['x']
    memory 1
  end
  action :run
end
docker_container 'db' do
  repo 'shipmate/base'
  tag 'bookworm'
  action :stop
end
"""

PUPPET = """\
include docker
$version = '2.0'
docker::image { 'example/app':
  image_tag  => '2.0',
  docker_dir => '/srv/app',
}
docker::run { 'app':
  image   => 'example/app:2.0',
  command => 'node server.js',
  ports   => ['80:8000'],
  expose  => ['9000'],
  volumes => ['/srv/data:/data:ro'],
  env     => ['NODE_PORT=8000'],
  depends => ['db'],
  restart => 'on-failure',
  extra_parameters => ['--restart=always', '--cpus=2'],
  hostname => "${::fqdn}",
}
docker::run { 'db': image => 'shipmate/base:bookworm', ensure => absent }
"""


def notes(result_notes: list[str]) -> str:
    return "\n".join(result_notes)


def test_chef_translates_common_properties_and_names_the_rest() -> None:
    result = translate_text("chef", CHEF, "recipe.rb", "shop")
    app = result.containers["app"]
    assert app == {
        "image": "example/app:2.0", "ports": ["80:8000", "443:8443"],
        "env": {"NODE_PORT": "8000", "MODE": "prod"}, "volumes": ["/srv/data:/data"],
        "command": "node server.js --port 8000", "restart": "always",
    }
    assert result.images == [{"tag": "example/app:2.0", "build": "/srv/app"}]
    text = notes(result.untranslated)
    for expected in ("recipe.rb:1: include_recipe", "recipe.rb:12: app: volume '/anon'",
                     "recipe.rb:15: app: links", "recipe.rb:16: app: hostname",
                     "recipe.rb:17: docker_container app: Ruby code `if",
                     "recipe.rb:25: docker_container db: action 'stop'"):
        assert expected in text, text


def test_puppet_translates_common_parameters_and_names_the_rest() -> None:
    result = translate_text("puppet", PUPPET, "site.pp", "shop")
    app = result.containers["app"]
    assert app["image"] == "example/app:2.0" and app["ports"] == ["80:8000"]
    assert app["env"] == {"NODE_PORT": "8000"} and app["volumes"] == ["/srv/data:/data:ro"]
    assert app["depends_on"] == ["db"] and app["restart"] == "always"
    assert app["command"] == "node server.js"
    assert "db" not in result.containers
    assert result.images == [{"tag": "example/app:2.0", "build": "/srv/app"}]
    text = notes(result.untranslated)
    for expected in ("site.pp:1: `include`", "site.pp:2: `$version`", "site.pp:11: app: expose",
                     "site.pp:16: docker::run app: extra parameter '--cpus=2'",
                     "site.pp:17: app: hostname", "site.pp:19: docker::run db: ensure"):
        assert expected in text, text


@pytest.mark.parametrize(("kind", "file"), [("chef", "node-app.rb"), ("puppet", "node-app.pp")])
def test_book_examples_become_valid_manifests(kind: str, file: str) -> None:
    result = translate_file(kind, str(EXAMPLES / file))
    m = parse_manifest(result.render(), "/x/imported.yaml", read_file=lambda p: "")
    (decl,) = m.containers
    spec = decl.spec
    assert m.name == "node-app" and spec.image == "shipmate/python:3.11"
    assert spec.ports == (PortMapping(8000, 80),)
    assert spec.env_dict == {"NODE_PORT": "8000"}
    assert spec.mounts == (Mount("/data", "/tmp/shipmate-example-data"),)
    assert spec.command is not None and spec.command[:3] == ("python3", "-m", "http.server")
    assert spec.restart == "unless-stopped"
    assert "NOT translated" in result.render()  # memory limit, class { 'docker': } ...


def test_unbalanced_recipe_is_refused() -> None:
    from shipmate.errors import ValidationError

    with pytest.raises(ValidationError, match="could not parse"):
        translate_text("puppet", "docker::run { 'x': image => ", "bad.pp", "bad")
