# Puppet manifest (docker module): run a Node.js app the way the book does.
class { 'docker': }

docker::image { 'shipmate/python':
  image_tag => '3.11',
}

docker::run { 'node-app':
  image            => 'shipmate/python:3.11',
  detach           => true,
  ports            => ['80:8000'],
  env              => ['NODE_PORT=8000'],
  volumes          => ['/tmp/shipmate-example-data:/data'],
  command          => 'python3 -m http.server 8000 --directory /data',
  extra_parameters => ['--restart=unless-stopped', '--memory=256m'],
  require          => Docker::Image['shipmate/python'],
}
