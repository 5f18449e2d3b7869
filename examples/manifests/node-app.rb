# Chef recipe (docker cookbook): run a Node.js app the way the book does.
include_recipe 'docker'

docker_image 'shipmate/python' do
  tag '3.11'
  action :pull_if_missing
end

docker_container 'node-app' do
  repo 'shipmate/python'
  tag '3.11'
  detach true
  port '80:8000'
  env 'NODE_PORT=8000'
  volumes ['/tmp/shipmate-example-data:/data']
  working_dir '/data'
  command 'python3 -m http.server 8000'
  restart_policy 'unless-stopped'
  memory 268435456
  action :run
end
